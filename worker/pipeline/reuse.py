"""Model economy: one model call per distinct attack, not per request.

An attack is many requests that differ only in who sent them and in the payload's
details. Events with the same *analysis signature* within the reuse window take the
analysis the model made for the first of them (``analyzed_by: reuse``, with the key of
the event it came from), its text re-rendered for the event. A process keeps the
signatures it saw in memory; a store item per signature lets replicas share them.

Events whose decision a model cannot change skip it: the floor is 0 and no rule
matched, so there is nothing to analyze (setting ``SECOPS_SKIP_MODEL_UNMATCHED``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

import worker.clock
from secops_core.contract import Analysis, SeverityFloorInfo, WafEvent
from secops_core.patterns import normalize_uri
from secops_core.rules_analysis import rules_analysis
from secops_core.waf.actions import REACHED_ACTIONS
from worker.ports import SignatureRepo
from worker.store.records import SavedAnalysis

log = structlog.get_logger("worker.reuse")

REUSED_BY = "reuse"
SKIPPED_BY = "skipped"
# The floor's class when nothing matched (secops_core.waf.catalog's `none`).
_NOTHING_MATCHED = "none"
# Signatures remembered in a process: a flood has a handful, a busy day a few thousand.
MAX_CACHED_SIGNATURES = 10_000
# 128 bits of SHA-256: no two attacks share an item.
_SIGNATURE_HASH_CHARS = 32


def disposition(event: WafEvent) -> str:
    """blocked / reached / the interstitial: what happened to the request, for the signature."""
    action = event.action.strip().upper()
    if action == "BLOCK":
        return "blocked"
    return "reached" if action in REACHED_ACTIONS else action.lower() or "unknown"


def analysis_signature(event: WafEvent, floor: SeverityFloorInfo) -> str:
    """What an analysis depends on: the rules and labels that matched, the attack class,
    whether the request was blocked or reached the application, the method and the URI
    template. The hash names the signature's store item.

    The source IP is left out on purpose. The analysis judges a request (what fired,
    against what, with what effect), and nothing the model is shown about an address
    (no reputation, no history) changes that judgment; grouping by source is the
    incident's job. With the IP in it, a botnet of 200 addresses sending one attack
    would cost 200 model calls, the bill growing with the attacker's fleet. The text
    that names the address is rendered for each event (:func:`render_for`).
    """
    rules = sorted({m.rule_id for m in event.matches} | {event.rule_name})
    parts = [
        "|".join(rules),
        event.rule_group or "",
        "|".join(sorted(set(event.labels))),
        floor.attack_class.strip().lower(),
        disposition(event),
        (event.http_method or "").strip().upper(),
        normalize_uri(event.uri),
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[
        :_SIGNATURE_HASH_CHARS
    ]


def _own_fields(event: WafEvent) -> list[str | None]:
    """The event's own values an analysis text may name, in a fixed order."""
    return [
        event.event_key,
        event.event_id,
        event.request_id,
        event.uri,
        event.host,
        event.source_ip,
        event.country,
    ]


def render_for(saved: SavedAnalysis, event: WafEvent, floor: SeverityFloorInfo) -> Analysis:
    """The saved analysis as this event's: its text names this event's own fields
    (address, URI, ids) instead of the first event's, its floor is this event's own, and
    its severity never falls below that floor.
    """
    swaps = [
        (old, new or "")
        for old, new in zip(saved.fields, _own_fields(event), strict=True)
        if old and old != new and len(old) >= 3
    ]
    # Longer values first, so a URI is replaced before the host inside it.
    swaps.sort(key=lambda pair: -len(pair[0]))

    def rendered(text: str) -> str:
        for old, new in swaps:
            text = text.replace(old, new)
        return text

    analysis = saved.analysis
    return analysis.model_copy(
        update={
            "security_analysis": rendered(analysis.security_analysis),
            "follow_up_suggestion": rendered(analysis.follow_up_suggestion),
            "severity_rating": max(analysis.severity_rating, floor.severity),
            "severity_floor": floor.severity,
            "floor": floor,
            "analyzed_by": REUSED_BY,
        }
    )


def skippable(floor: SeverityFloorInfo) -> bool:
    """Nothing matched and the floor is 0: no model can find an attack in it."""
    return floor.severity == 0 and floor.attack_class.strip().lower() == _NOTHING_MATCHED


def skipped_analysis(event: WafEvent, floor: SeverityFloorInfo) -> Analysis:
    """The rules' analysis of an event that skipped the model."""
    return rules_analysis(event, floor).model_copy(update={"analyzed_by": SKIPPED_BY})


@dataclass(frozen=True)
class Reused:
    analysis: Analysis
    origin: str  # the event key whose model analysis this is


class AnalysisReuse:
    """Saved analyses by signature: the process's memory first, then the store.

    ``AnalysisReuse(repo, window_s=900)``; thread-safe. An analysis is reused while it
    is younger than ``window_s``: long enough to cover a campaign, short enough that a
    better model or a changed rule set takes over within minutes.
    """

    def __init__(
        self,
        repo: SignatureRepo,
        *,
        window_s: float,
        clock: Callable[[], float] = worker.clock.epoch,
        max_cached: int = MAX_CACHED_SIGNATURES,
    ) -> None:
        self.repo = repo
        self.window_s = window_s
        self._clock = clock
        self._max_cached = max_cached
        self._cache: OrderedDict[str, SavedAnalysis] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, event: WafEvent, floor: SeverityFloorInfo) -> Reused | None:
        """This event's analysis from a fresh one of its signature, or None."""
        signature = analysis_signature(event, floor)
        saved = self._cached(signature)
        if saved is None:
            saved = self.repo.get_signature(signature)
            if saved is None or not self._fresh(saved):
                return None
            self._remember(signature, saved)
        return Reused(render_for(saved, event, floor), saved.origin)

    def save(self, event: WafEvent, analysis: Analysis) -> None:
        """Keep a model's analysis of ``event`` for the events of its signature.

        The caller saves what its model answered; a degraded analysis (the rules
        standing in for a failed model) is not kept, so the next event asks again.
        """
        if analysis.floor is None or analysis.degraded:
            return
        signature = analysis_signature(event, analysis.floor)
        saved = SavedAnalysis(
            signature=signature,
            analysis=analysis,
            origin=event.event_key,
            fields=tuple(_own_fields(event)),
            saved_at=self._clock(),
        )
        self._remember(signature, saved)
        self.repo.put_signature(saved, ttl_s=self.window_s)

    def _fresh(self, saved: SavedAnalysis) -> bool:
        return self._clock() - saved.saved_at <= self.window_s

    def _cached(self, signature: str) -> SavedAnalysis | None:
        with self._lock:
            saved = self._cache.get(signature)
            if saved is None:
                return None
            if not self._fresh(saved):
                del self._cache[signature]
                return None
            self._cache.move_to_end(signature)
            return saved

    def _remember(self, signature: str, saved: SavedAnalysis) -> None:
        with self._lock:
            self._cache[signature] = saved
            self._cache.move_to_end(signature)
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
