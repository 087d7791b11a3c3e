"""Model economy: one model call per distinct attack, not per request.

An attack is many requests that differ only in who sent them and in the payload's
details. Events with the same *analysis signature* within the reuse window take the
analysis the model made for the first of them (``analyzed_by: reuse``, with the key of
the event it came from), its text re-rendered for the event. A process keeps the
signatures it saw in memory; a store item per signature lets replicas share them,
written once the signature repeats (most distinct attacks are seen once, and their
item would be a write nobody reads; a replica that meets a repeat first asks the model
once more, at worst).

Events whose decision a model has no business changing skip it (:class:`SkipPolicy`):
nothing matched and the floor is 0, so there is nothing to analyze
(``SECOPS_SKIP_MODEL_UNMATCHED``); or the WAF blocked a request for who sent it, how
fast or how big it was, not for what it carried (``SECOPS_SKIP_MODEL_BLOCKED_NOISE``);
or the floor is 5, which no answer can change (``SECOPS_SKIP_MODEL_MAX_FLOOR``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

import worker.platform.clock
from secops_core.contract import Analysis, SeverityFloorInfo, WafEvent
from secops_core.patterns import normalize_uri
from secops_core.rules_analysis import rules_analysis
from secops_core.waf.actions import REACHED_ACTIONS
from secops_core.waf.catalog import CLASSES
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


# Catalog kinds that judge the sender, its rate or its size (IP lists, anonymizers,
# geography, bot categories and signals, rate and size limits): no payload finding.
NOISE_KINDS = frozenset({"reputation", "bot", "volume"})
# The top of the scale: a floor of 5 leaves a model nothing to decide.
MAX_SEVERITY = 5
# The highest floor blocked noise has in the catalog (a blocked bad bot or size limit).
NOISE_MAX_FLOOR = 2


@dataclass(frozen=True, slots=True)
class SkipPolicy:
    """Which events the rules decide without asking a model.

    ``unmatched``: nothing matched and the floor is 0; no model can find an attack
    in it. ``blocked_noise``: the WAF blocked the request, and only for who sent it,
    how fast or how big it was (a reputation list, a bot category, a rate or size
    limit; catalog kinds in :data:`NOISE_KINDS`), with a floor of at most 2. The
    request never reached the application and carried no payload finding, so the
    model could only read the same fields the rules graded; these are the bulk of a
    WAF's blocks (a scanner's fleet, a bot swarm) and would otherwise cost a model
    call per distinct URI. Any payload finding (an attack, fraud), anything that
    reached the application, or an unknown class still goes to the model.
    ``max_floor``: the floor is 5; the final severity is never below the floor, so
    no answer can change the severity or the triage, and the page goes out without
    waiting for a model (the rules' text and the catalog's follow-up stand in).
    """

    unmatched: bool = True
    blocked_noise: bool = True
    max_floor: bool = True

    def skips(self, event: WafEvent, floor: SeverityFloorInfo, findings: Sequence[SeverityFloorInfo]) -> bool:
        """Whether ``event`` is decided without a model, from its floor and every
        finding that competed for it (:func:`secops_core.waf.floor.explain_floor`)."""
        if self.unmatched and floor.severity == 0 and _class(floor) == _NOTHING_MATCHED:
            return True
        if self.max_floor and floor.severity >= MAX_SEVERITY:
            return True
        if not self.blocked_noise or disposition(event) != "blocked" or floor.severity > NOISE_MAX_FLOOR:
            return False
        # Every finding, not just the winner: a request a reputation list blocked may
        # also carry an injection a counting rule saw, graded the same.
        return all(_noise(f) for f in (floor, *findings))


def _class(floor: SeverityFloorInfo) -> str:
    return floor.attack_class.strip().lower()


def _noise(finding: SeverityFloorInfo) -> bool:
    known = CLASSES.get(_class(finding))
    return known is not None and known.kind in NOISE_KINDS


def skipped_analysis(event: WafEvent, floor: SeverityFloorInfo) -> Analysis:
    """The rules' analysis of an event that skipped the model."""
    return rules_analysis(event, floor).model_copy(update={"analyzed_by": SKIPPED_BY})


@dataclass(frozen=True)
class Reused:
    analysis: Analysis
    origin: str  # the event key whose model analysis this is


class Lead:
    """The one caller of a process asking the model for a signature's first analysis;
    the others wait for its answer. :meth:`release` once the analysis is saved (or
    the attempt given up), whatever happened."""

    def __init__(self, owner: AnalysisReuse, signature: str) -> None:
        self._owner = owner
        self.signature = signature
        self.done = threading.Event()

    def release(self) -> None:
        self._owner._release(self)


# How long a caller waits for the lead's model answer before asking the model itself:
# longer than a model call normally takes, short beside a lease.
DEFAULT_LEAD_WAIT_S = 30.0


class AnalysisReuse:
    """Saved analyses by signature: the process's memory first, then the store.

    ``AnalysisReuse(repo, window_s=900)``; thread-safe. An analysis is reused while it
    is younger than ``window_s``: long enough to cover a campaign, short enough that a
    better model or a changed rule set takes over within minutes.

    Single flight: the first caller of a signature nobody has analyzed gets a
    :class:`Lead` and asks the model; callers of that signature arriving meanwhile
    wait (up to ``lead_wait_s``) for its answer instead of each asking the model, so
    the first seconds of a flood cost one call, not one per worker thread.
    """

    def __init__(
        self,
        repo: SignatureRepo,
        *,
        window_s: float,
        clock: Callable[[], float] = worker.platform.clock.epoch,
        max_cached: int = MAX_CACHED_SIGNATURES,
        lead_wait_s: float = DEFAULT_LEAD_WAIT_S,
    ) -> None:
        self.repo = repo
        self.window_s = window_s
        self.lead_wait_s = lead_wait_s
        self._clock = clock
        self._max_cached = max_cached
        self._cache: OrderedDict[str, SavedAnalysis] = OrderedDict()
        self._leads: dict[str, Lead] = {}
        self._shared: set[str] = set()  # signatures this process knows are in the store
        self._lock = threading.Lock()

    def find(self, event: WafEvent, floor: SeverityFloorInfo) -> Reused | Lead | None:
        """This event's analysis from a fresh one of its signature; else a :class:`Lead`
        (the caller asks the model, saves, then releases it), or None when another
        caller's lead took longer than ``lead_wait_s`` (ask the model anyway).
        """
        signature = analysis_signature(event, floor)
        deadline = time.monotonic() + self.lead_wait_s
        looked_up = False
        while True:
            saved = self._cached(signature)
            if saved is not None:
                self._share(saved)
                return Reused(render_for(saved, event, floor), saved.origin)
            with self._lock:
                lead = self._leads.get(signature)
            if lead is None:
                if not looked_up:
                    looked_up = True
                    saved = self.repo.get_signature(signature)
                    if saved is not None and self._fresh(saved):
                        with self._lock:
                            self._shared.add(signature)  # it is in the store already
                        self._remember(signature, saved)
                        continue
                with self._lock:
                    if signature not in self._leads:
                        self._leads[signature] = lead = Lead(self, signature)
                        return lead
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not lead.done.wait(remaining):
                log.info("reuse_lead_wait_expired", signature=signature)
                return None

    def _release(self, lead: Lead) -> None:
        with self._lock:
            if self._leads.get(lead.signature) is lead:
                del self._leads[lead.signature]
        lead.done.set()

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
        with self._lock:
            self._shared.discard(signature)  # a new analysis: the store's copy is older
        self._remember(signature, saved)

    def _share(self, saved: SavedAnalysis) -> None:
        """Write a signature that repeated to the store, once, for the other replicas."""
        with self._lock:
            if saved.signature in self._shared:
                return
            self._shared.add(saved.signature)
        try:
            self.repo.put_signature(saved, ttl_s=max(1.0, self.window_s - (self._clock() - saved.saved_at)))
        except BaseException:
            with self._lock:
                self._shared.discard(saved.signature)
            raise

    def _fresh(self, saved: SavedAnalysis) -> bool:
        return self._clock() - saved.saved_at <= self.window_s

    def _cached(self, signature: str) -> SavedAnalysis | None:
        with self._lock:
            saved = self._cache.get(signature)
            if saved is None:
                return None
            if not self._fresh(saved):
                del self._cache[signature]
                self._shared.discard(signature)
                return None
            self._cache.move_to_end(signature)
            return saved

    def _remember(self, signature: str, saved: SavedAnalysis) -> None:
        with self._lock:
            self._cache[signature] = saved
            self._cache.move_to_end(signature)
            while len(self._cache) > self._max_cached:
                evicted, _ = self._cache.popitem(last=False)
                self._shared.discard(evicted)
