"""The relevance filter of log files: the catalog's decision, with a fast path for noise.

docs/architecture.md, "Relevance". Each record of a log file is noise (counted in the
read, never stored), counted (a per-window aggregate) or an event, and that is decided
by :func:`secops_core.waf.relevance.relevance`, the same catalog that grades the floor.

The fast path (:meth:`RelevanceFilter.floor_key`, :meth:`RelevanceFilter.known_noise`)
skips most of a real log without building it: msgspec decodes each line against the few
top-level fields the floor reads, validating the whole line as JSON but skipping
everything else (the request, its headers) unbuilt, and keeps each of those fields as its
raw JSON text. Those texts, joined, are the record's *floor key*. The catalog's verdict
is a function of those fields' values alone (the floor reads the action, the terminating
rule and its type, the rule lists and the labels), and equal texts parse to equal values,
so a key once graded noise is noise every time it comes back. Only noise keys are
remembered: an event or a counted record is parsed anyway, to be sent or counted.

Nothing is assumed about the bytes: spacing, key order, escapes and duplicate keys (the
last one wins, in msgspec as in :func:`json.loads`) are the parser's business, and a
line msgspec refuses is parsed and graded in full. A record's own data cannot reach the
key: strings are decoded as strings, and only the floor fields' values form it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from msgspec.structs import astuple

from secops_core.contract import WafEvent
from secops_core.errors import ContractError
from secops_core.ingest.fields import event_time, opt_str, parse_action, parse_ip
from secops_core.ingest.normalize import normalize_event
from secops_core.waf.operator import OperatorCatalog, active_operator_catalog
from secops_core.waf.relevance import Relevance, Verdict, relevance

# A field the record does not hold: its raw text is empty, which no JSON value is.
_ABSENT = msgspec.Raw(b"")
# Between the fields of a floor key: msgspec refuses a raw control character anywhere in
# a line (inside a string it must be escaped, outside one only whitespace is allowed),
# so no field's text holds it and a key splits back into its fields one way only.
_KEY_SEPARATOR = b"\x00"


class _AnyObject(msgspec.Struct):
    """Any JSON object, its members checked as JSON and skipped (a record's request)."""


class _FloorView(msgspec.Struct, rename="camel", gc=False):
    """The fields of a native record the floor reads, each as its raw JSON text.

    The decode itself refuses what is not a WAF record: a request that is missing or not
    an object, and a CloudWatch envelope's keys (``UnsetType`` takes no value at all).
    """

    http_request: _AnyObject
    action: msgspec.Raw = _ABSENT
    terminating_rule_id: msgspec.Raw = _ABSENT
    terminating_rule_type: msgspec.Raw = _ABSENT
    rule_group_list: msgspec.Raw = _ABSENT
    non_terminating_matching_rules: msgspec.Raw = _ABSENT
    rate_based_rule_list: msgspec.Raw = _ABSENT
    labels: msgspec.Raw = _ABSENT
    message_type: msgspec.UnsetType = msgspec.UNSET
    log_events: msgspec.UnsetType = msgspec.UNSET


class _RequestView(msgspec.Struct, rename="camel", gc=False):
    client_ip: Any = None
    uri: Any = None


class _CountedView(msgspec.Struct, rename="camel", gc=False):
    """What a window count reads of a record, as JSON values (validated after, by the
    same readers normalization uses)."""

    http_request: _RequestView
    webacl_id: Any = None
    action: Any = None
    timestamp: Any = None


_decode_floor = msgspec.json.Decoder(_FloorView).decode
_decode_counted = msgspec.json.Decoder(_CountedView).decode
# The fields of a native record the floor reads (docs/architecture.md, "Relevance"): the
# floor key's fields, in its order, and the parsed record's shape for the verdict cache.
_KEY_FIELDS = slice(1, 8)
_FLOOR_FIELDS = tuple(field.encode_name for field in msgspec.structs.fields(_FloorView))[_KEY_FIELDS]
# Floor keys graded noise, per filter: a log has a few hundred (countries, regions,
# verified bots); past this many, new ones are graded in full each time.
MAX_NOISE_KEYS = 8192
# A longer key (rule lists carrying much matched data) is graded each time, not kept.
MAX_KEY_BYTES = 4096
# Floor keys graded an event, and those graded counted: an attack's keys vary with
# what its rules matched.
MAX_EVENT_KEYS = 4096
# What one filter may hold in remembered keys, whatever a log holds: noise keys have a
# budget of their own, so attacks (events, counted records and the shapes of their
# parsed floor fields) never crowd them out.
NOISE_KEY_BUDGET_BYTES = 8 * 1024 * 1024
OTHER_KEY_BUDGET_BYTES = 8 * 1024 * 1024
# Source addresses parsed, per filter.
MAX_CACHED_IPS = 16384
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
    """One reader's filter: the operator's catalog, the floor keys it has graded and the
    verdicts it gave by shape. One per read."""

    def __init__(self, operator: OperatorCatalog | None = None) -> None:
        self.operator = active_operator_catalog() if operator is None else operator
        self._noise_keys: set[bytes] = set()
        self._event_keys: set[bytes] = set()
        self._counted_keys: dict[bytes, Verdict] = {}
        self._noise_bytes = self._other_bytes = 0
        self._ips: dict[str, str] = {}
        self._verdicts: dict[str, Verdict] = {}

    @staticmethod
    def floor_key(data: bytes | str) -> bytes | None:
        """The record's floor key: its floor fields' raw texts, joined (module docstring).

        None when the line is not one JSON object, holds no request object (not a WAF
        record) or is a CloudWatch envelope: those are parsed and read in full.
        """
        try:
            view = _decode_floor(data)
        except msgspec.DecodeError:
            return None
        return _KEY_SEPARATOR.join(astuple(view)[_KEY_FIELDS])

    def noise_run(self, lines: list[bytes], start: int, stop: int) -> tuple[int, bytes | None]:
        """How many of ``lines[start:stop]`` in a row are known noise by their floor key,
        and the floor key of the line that ended the run (None: it has none, or the run
        reached ``stop``). The reader's hot loop: :meth:`floor_key` and
        :meth:`known_noise`, inlined."""
        decode, known, join, fields = _decode_floor, self._noise_keys, _KEY_SEPARATOR.join, _KEY_FIELDS
        at = start
        while at < stop:
            try:
                view = decode(lines[at])
            except msgspec.DecodeError:
                return at - start, None
            key = join(astuple(view)[fields])
            if key not in known:
                return at - start, key
            at += 1
        return at - start, None

    def known_noise(self, key: bytes | None) -> bool:
        """Whether ``key`` was graded noise before: the record is skipped unbuilt."""
        return key is not None and key in self._noise_keys

    def known_event(self, key: bytes | None) -> bool:
        """Whether ``key`` was graded an event before: the record is sent unparsed."""
        return key is not None and key in self._event_keys

    def remember(self, key: bytes | None, graded: Graded | None) -> None:
        """What the catalog said of the record ``key`` came from, each kind up to its own
        bound, so attacks, whose keys vary with the matched data, never crowd out the
        noise keys."""
        if key is None or graded is None or len(key) > MAX_KEY_BYTES:
            return
        kind = graded.relevance
        if kind is Relevance.NOISE:
            if (
                len(self._noise_keys) < MAX_NOISE_KEYS
                and self._noise_bytes + len(key) <= NOISE_KEY_BUDGET_BYTES
            ):
                self._noise_keys.add(key)
                self._noise_bytes += len(key)
        elif self._room_for(len(key)):
            if kind is Relevance.EVENT and len(self._event_keys) < MAX_EVENT_KEYS:
                self._event_keys.add(key)
                self._other_bytes += len(key)
            elif kind is Relevance.COUNTED and len(self._counted_keys) < MAX_EVENT_KEYS:
                self._counted_keys[key] = graded.verdict
                self._other_bytes += len(key)

    def _room_for(self, size: int) -> bool:
        return self._other_bytes + size <= OTHER_KEY_BUDGET_BYTES

    def certainly_noise(self, raw: bytes | str) -> bool:
        """True only for a record the catalog calls noise: from its floor key when that
        is known, else parsed and graded in full (and its key remembered)."""
        key = self.floor_key(raw)
        if key is not None and key in self._noise_keys:
            return True
        try:
            record = json.loads(raw)
        except ValueError:
            return False
        graded = self.grade(record) if isinstance(record, dict) else None
        self.remember(key, graded)
        return graded is not None and graded.relevance is Relevance.NOISE

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
            request = self._counted_request(record)
            if request is not None:
                return Graded(request, known)
        try:
            event = normalize_event(dict(record))
        except ContractError:
            return None
        verdict = relevance(event, self.operator)
        if (
            len(self._verdicts) < MAX_CACHED_VERDICTS
            and len(shape) <= MAX_KEY_BYTES
            and self._room_for(len(shape))
        ):
            self._verdicts[shape] = verdict
            self._other_bytes += len(shape)
        return Graded(event, verdict)

    def known_counted(self, key: bytes | None, data: bytes | str) -> Graded | None:
        """A record whose floor ``key`` was graded counted before: its countable fields
        read without building the rest (None: not known, or a field is malformed, and
        the record takes the full path)."""
        verdict = self._counted_keys.get(key) if key is not None else None
        if verdict is None:
            return None
        try:
            view = _decode_counted(data)
        except msgspec.DecodeError:
            return None
        request = view.http_request
        fields = {
            "webaclId": view.webacl_id,
            "action": view.action,
            "timestamp": view.timestamp,
            "httpRequest": {"uri": request.uri, "clientIp": request.client_ip},
        }
        counted = self._counted_request(fields)
        return None if counted is None else Graded(counted, verdict)

    def _counted_request(self, record: Mapping[str, Any]) -> CountedRequest | None:
        """The countable fields of a native record, validated as normalization would;
        None when one is missing or malformed (the record then takes the full path)."""
        request = record.get("httpRequest")
        if not isinstance(request, Mapping):
            return None
        try:
            # The same readers normalization uses, so a window's key is the same either way.
            uri = opt_str(request, "uri") or ""
            web_acl = opt_str(record, "webaclId")
            action = parse_action(record.get("action"))
            source_ip = self._source_ip(request.get("clientIp"))
            moment = event_time(record.get("timestamp"))
        except ContractError:
            return None
        return CountedRequest(web_acl, action, uri, source_ip, moment)

    def _source_ip(self, raw: Any) -> str:
        """:func:`parse_ip`, remembered per text: a blocked source sends thousands."""
        if not isinstance(raw, str):
            return parse_ip(raw)
        known = self._ips.get(raw)
        if known is None:
            known = parse_ip(raw)
            if len(self._ips) < MAX_CACHED_IPS:
                self._ips[raw] = known
        return known
