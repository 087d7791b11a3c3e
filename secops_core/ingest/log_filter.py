"""The relevance filter of log files: the catalog's decision, with a byte fast path.

docs/architecture.md, "Relevance". Each record of a log file is noise (counted in the
read, never stored), counted (a per-window aggregate) or an event, and that is decided
by :func:`secops_core.waf.relevance.relevance`, the same catalog that grades the floor.

The byte fast path (:meth:`RelevanceFilter.certainly_noise`) may only skip what the
catalog would call noise: a default-action ALLOW in WAF's compact form with no rule in
it (:func:`secops_core.ingest.log_bytes.compact_default_allow`: each key once, no
backslash-u escape, every rule list empty), whose labels (if any) are a compact
``"labels":[{"name":"…"},…]`` array of labels the catalog calls informational
(:func:`secops_core.waf.floor.informational_label`, the operator's catalog first). A geo
match rule labels every request it inspects, so without this most of a real log would
need a parse. Anything it cannot read for certain (other
spacing, an escape inside a label, ``"labels"`` twice) is parsed and graded instead.
Quotes inside JSON strings are escaped, so request data cannot forge a pattern.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from secops_core.contract import WafEvent
from secops_core.errors import ContractError
from secops_core.ingest.fields import event_time, opt_str, parse_action, parse_ip
from secops_core.ingest.log_bytes import compact_default_allow_bytes
from secops_core.ingest.normalize import normalize_event
from secops_core.waf.floor import informational_label
from secops_core.waf.operator import OperatorCatalog, active_operator_catalog
from secops_core.waf.relevance import Relevance, Verdict, relevance

_LABELS = b'"labels"'
_LABELS_OPEN = b'"labels":['
_NAME_OPEN = b'{"name":"'
_NAME_CLOSE = b'"}'
_NAME_SPLIT = b'"},{"name":"'
# Label names seen by one filter; a log has a few hundred (countries, regions, bots).
MAX_CACHED_LABELS = 8192
# The fields of a native record the floor reads (docs/architecture.md, "Relevance").
_FLOOR_FIELDS = (
    "action",
    "terminatingRuleId",
    "terminatingRuleType",
    "ruleGroupList",
    "nonTerminatingMatchingRules",
    "rateBasedRuleList",
    "labels",
)
# Verdicts remembered by the shape of those fields: a reputation list or a bot category
# blocks thousands of requests of one shape a day.
MAX_CACHED_VERDICTS = 4096


@dataclass(frozen=True, slots=True)
class CountedRequest:
    """What a window count needs of a counted record (the event's own fields, for a
    record whose verdict was known from its shape)."""

    web_acl: str | None
    action: str
    uri: str
    source_ip: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Graded:
    """A parsed record's event (or, for a counted one, its countable fields) and what the
    catalog says it is worth."""

    event: WafEvent | CountedRequest
    verdict: Verdict

    @property
    def relevance(self) -> Relevance:
        return self.verdict.relevance


class RelevanceFilter:
    """One reader's filter: the operator's catalog and a cache of label answers."""

    def __init__(self, operator: OperatorCatalog | None = None) -> None:
        self.operator = active_operator_catalog() if operator is None else operator
        self._labels: dict[bytes, bool] = {}
        self._verdicts: dict[str, Verdict] = {}

    def certainly_noise(self, raw: bytes | str) -> bool:
        """True only for a record the catalog calls noise, told from its bytes alone."""
        return self.certainly_noise_bytes(
            raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        )

    def certainly_noise_bytes(self, data: bytes) -> bool:
        """:meth:`certainly_noise` of bytes (the reader's hot path)."""
        if not compact_default_allow_bytes(data):
            return False
        # One scan when there are no labels (most records): a first "labels" that does
        # not open the compact array, or a second one, means a parse.
        start = data.find(_LABELS)
        if start < 0:
            return True
        if not data.startswith(_LABELS_OPEN, start) or data.find(_LABELS, start + 1) >= 0:
            return False
        begin = start + len(_LABELS_OPEN)
        end = data.find(b"]", begin)
        if end < 0:
            return False
        return self._informational_array(data[begin:end])

    def _informational_array(self, body: bytes) -> bool:
        if not body:
            return True
        if not (body.startswith(_NAME_OPEN) and body.endswith(_NAME_CLOSE)):
            return False
        for name in body[len(_NAME_OPEN) : -len(_NAME_CLOSE)].split(_NAME_SPLIT):
            known = self._labels.get(name)
            if known is None:
                known = self._label(name)
            if not known:
                return False
        return True

    def _label(self, name: bytes) -> bool:
        # An escape or a quote left in a piece: not one plain label name, so parse.
        if b'"' in name or b"\\" in name:
            return False
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            return False
        answer = informational_label(text, self.operator)
        if len(self._labels) < MAX_CACHED_LABELS:
            self._labels[name] = answer
        return answer

    def grade(self, record: Mapping[str, Any]) -> Graded | None:
        """The catalog's verdict on a parsed record; None when it is not a valid WAF
        record (the caller sends it on as an event, to be rejected with its reason).

        The floor depends on the record's rules, labels and action only, so a verdict is
        remembered by their shape, and a record of a known shape is not normalized again:
        its event is then only what a window count needs (:class:`CountedRequest`; an
        event's record is sent as the log holds it and normalized by the worker).
        """
        shape = repr(tuple(record.get(name) for name in _FLOOR_FIELDS))
        known = self._verdicts.get(shape)
        if known is not None:
            request = _counted_request(record)
            if request is not None:
                return Graded(request, known)
        try:
            event = normalize_event(dict(record))
        except ContractError:
            return None
        verdict = relevance(event, self.operator)
        if len(self._verdicts) < MAX_CACHED_VERDICTS:
            self._verdicts[shape] = verdict
        return Graded(event, verdict)


def _counted_request(record: Mapping[str, Any]) -> CountedRequest | None:
    """The countable fields of a native record, validated as normalization would; None
    when one is missing or malformed (the record then takes the full path)."""
    request = record.get("httpRequest")
    if not isinstance(request, Mapping):
        return None
    try:
        # The same readers normalization uses, so a window's key is the same either way.
        uri = opt_str(request, "uri") or ""
        web_acl = opt_str(record, "webaclId")
        action = parse_action(record.get("action"))
        source_ip = parse_ip(request.get("clientIp"))
        moment = event_time(record.get("timestamp"))
    except ContractError:
        return None
    return CountedRequest(web_acl, action, uri, source_ip, moment)
