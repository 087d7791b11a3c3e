"""The EventBridge channel: each incident milestone as one event on a bus, so users route
incidents with their own rules (to PagerDuty, Opsgenie, Jira, Lambda, a queue).

Every event has ``source`` ``secops-worker`` and one of three detail-types (``Incident
Opened``, ``Incident Updated``, ``Incident Resolved``); its ``detail`` is the versioned
document described by ``docs/schemas/incident-event.v1.json``. Every string in it that
an attacker or a model could have written is cleaned to one line without control or
invisible characters (docs/architecture.md, "Untrusted text"), and the document is kept
far below EventBridge's 256 KB entry limit by cutting its longest values and lists, the
same way on every run.

``PutEvents`` answers a call that arrived with per-entry results: a throttled or
internally failed entry is retried like a throttled call, within the attempt budget;
any other entry error (a bus that refuses the source, a malformed detail) is a
configuration problem that retrying cannot fix. EventBridge delivers at least once and
a retried call can publish twice, so consumers deduplicate on ``detail.incident_id`` and
``detail.milestone.id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Self

import structlog
from botocore.exceptions import ClientError
from tenacity.wait import wait_base

from secops_core.contract import Analysis, WafEvent
from secops_core.text import TRUNCATION_SUFFIX
from worker.incidents.milestones import Milestone, MilestoneKind
from worker.incidents.records import IncidentRecord
from worker.notify import retry
from worker.notify.channel import ChannelName
from worker.notify.sanitize import clean
from worker.platform import clock
from worker.platform.aws import client as aws_client
from worker.settings import Settings

if TYPE_CHECKING:
    from types_boto3_events.client import EventBridgeClient
    from types_boto3_events.type_defs import PutEventsRequestEntryTypeDef

log = structlog.get_logger("worker.notify.eventbridge")

SOURCE = "secops-worker"
SCHEMA_VERSION = "1"
# Where the schema of the detail lives, relative to the repository root.
SCHEMA_FILE = "docs/schemas/incident-event.v1.json"
DEFAULT_BUS = "default"

DETAIL_TYPE_OPENED = "Incident Opened"
DETAIL_TYPE_UPDATED = "Incident Updated"
DETAIL_TYPE_RESOLVED = "Incident Resolved"
DETAIL_TYPES: Mapping[MilestoneKind, str] = {
    "opened": DETAIL_TYPE_OPENED,
    "growth": DETAIL_TYPE_UPDATED,
    "severity_rise": DETAIL_TYPE_UPDATED,
    "new_class": DETAIL_TYPE_UPDATED,
    "reached_app": DETAIL_TYPE_UPDATED,
    "resolved": DETAIL_TYPE_RESOLVED,
}

# EventBridge refuses an entry above 256 KB (Time counts 14 bytes; Source, DetailType,
# Detail and each Resources entry their UTF-8 bytes, and the one resource here is at
# most 2 KB). The detail stays at a quarter of that: a target such as SQS or an API
# destination receives it wrapped in the event envelope, JSON-escaped again, and a rule
# author needs the top entries, not a census.
MAX_ENTRY_BYTES = 256 * 1024
MAX_DETAIL_BYTES = 64 * 1024

# Value limits at full size, in characters, divided by the scale of each attempt.
_ID = 512  # incident id, rule names, event keys, attack class, countries, IPs
_URI = 1024  # URI templates and the signature target (host + URI template)
_SUMMARY = 1024
# The largest entries of each count map: what a rule or a person acts on.
_MAX_TOP = 10
_MAX_SAMPLE_KEYS = 10
# Successive scales tried until the detail fits; at the last every value is 16
# characters and every list one entry, so it fits by construction.
_SCALES = (1, 2, 4, 8, 32)
_MIN_CHARS = 16

# A web ACL ARN from a WAF log (``webaclId``) names the resource the events are about.
_WAF_ARN = re.compile(r"^arn:aws[a-z-]*:(wafv2|waf-regional|waf):[A-Za-z0-9:/_.\-]+$")
_MAX_ARN_CHARS = 2048
# The summary is for a person, in a pager or a chat: it must never carry a link an
# attacker chose. Schemes lose their ``://`` and ``www.`` its dot, so nothing renders it
# as a link.
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,31}):/+")
_WWW = re.compile(r"(?i)\bwww\.")

_NOT_AUTHORIZED = "eventbridge_not_authorized"
_INVALID_EVENT = "eventbridge_invalid_event"


def _permanent(code: str, bus: str) -> tuple[str, str]:
    """For an error code of the call or of the entry that retrying cannot fix: the
    reason recorded for the channel and a hint for the operator.
    """
    if code == "ResourceNotFoundException":
        return (
            "eventbridge_bus_not_found",
            f"the event bus {bus!r} does not exist: run `secops setup` or set SECOPS_EVENTBRIDGE_BUS",
        )
    if code in {"NotAuthorizedForSourceException", "NotAuthorizedForDetailTypeException"}:
        return (
            _NOT_AUTHORIZED,
            f"the worker's role may not put source {SOURCE!r} or this detail-type on {bus!r} "
            "(a condition on events:source or events:detail-type in its policy)",
        )
    if code in {"AccessDenied", "AccessDeniedException", "UnrecognizedClientException"}:
        return _NOT_AUTHORIZED, f"the worker's role lacks events:PutEvents on the bus {bus!r}"
    if code in {"InvalidClientTokenId", "ExpiredTokenException", "InvalidSignatureException"}:
        return _NOT_AUTHORIZED, "the worker's credentials are not valid"
    if code in {"MalformedDetail", "InvalidArgument", "ValidationException", "RedactionFailure"}:
        return _INVALID_EVENT, "EventBridge refused the event itself; report it with the error message"
    if code == "InvalidAccountIdException":
        return _INVALID_EVENT, f"the account in the bus ARN {bus!r} is not valid"
    return "eventbridge_rejected", "EventBridge refused the event"


class EventBridgeRejected(retry.Rejected):
    """EventBridge refused an event for a reason retrying cannot fix (bus, IAM, input).

    ``reason`` is ``eventbridge_bus_not_found``, ``eventbridge_not_authorized``,
    ``eventbridge_invalid_event`` or ``eventbridge_rejected``; ``code`` is EventBridge's
    error code, of the call or of the entry.
    """


def _entry_error(code: str, message: str) -> ClientError:
    """A failed entry (the call succeeded, ``FailedEntryCount`` > 0) as the ClientError a
    failed call with that code would be: an entry's throttling is then classified and
    retried exactly like a throttled call (worker/notify/retry.py).
    """
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "RequestId": "",
                "HostId": "",
                "HTTPStatusCode": 200,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        "PutEvents",
    )


# ---- the detail --------------------------------------------------------------------------


@dataclass
class _Cutter:
    """One rendering attempt's limits; remembers whether it cut anything."""

    scale: int
    cut: bool = field(default=False)

    def text(self, value: object, base: int) -> str:
        """An untrusted value as one clean line, at most the scaled limit."""
        raw = "" if value is None else str(value)
        cleaned = clean(raw, max(base // self.scale, _MIN_CHARS))
        if cleaned.endswith(TRUNCATION_SUFFIX) and not raw.endswith(TRUNCATION_SUFFIX):
            self.cut = True
        return cleaned

    def count(self, base: int) -> int:
        return max(base // self.scale, 1)

    def top(self, counts: Mapping[str, int], base: int) -> list[dict[str, Any]]:
        """The largest entries of a count map, ties by name: the same order every time."""
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = ranked[: self.count(_MAX_TOP)]
        if len(kept) < len(ranked):
            self.cut = True
        return [{"value": self.text(name, base), "count": int(n)} for name, n in kept]

    def keys(self, keys: Sequence[str]) -> list[str]:
        unique = list(dict.fromkeys(keys))
        kept = unique[: self.count(_MAX_SAMPLE_KEYS)]
        if len(kept) < len(unique):
            self.cut = True
        return [self.text(key, _ID) for key in kept]


def _defang(text: str) -> str:
    return _WWW.sub("www[.]", _SCHEME.sub(r"\1[:]//", text))


def _summary_line(incident: IncidentRecord, milestone: Milestone, cut: _Cutter) -> str:
    """One link-free sentence: what changed and the totals."""
    source = "many sources" if incident.group_by == "signature" else cut.text(incident.source, _ID)
    sentence = (
        f"SecOps incident {milestone.kind}: {cut.text(milestone.summary, _SUMMARY)}. "
        f"{cut.text(incident.attack_class, _ID)} from {source}: {incident.count} events, "
        f"highest severity {incident.max_severity}, {incident.reached_app} reached the application "
        f"(status {incident.status})."
    )
    return cut.text(_defang(sentence), _SUMMARY * 2)


def _detail(incident: IncidentRecord, milestone: Milestone, cut: _Cutter) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "incident_id": cut.text(incident.id, _ID),
        "status": incident.status,
        "milestone": {
            "id": cut.text(milestone.id, _ID),
            "kind": milestone.kind,
            "summary": cut.text(_defang(milestone.summary), _SUMMARY),
        },
        "group": {
            "by": incident.group_by,
            "source": cut.text(incident.source, _ID),
            "attack_class": cut.text(incident.attack_class, _ID),
            "target": None if incident.target is None else cut.text(incident.target, _URI),
        },
        "first_seen": incident.first_seen.isoformat(),
        "last_seen": incident.last_seen.isoformat(),
        "count": incident.count,
        "max_severity": incident.max_severity,
        "reached_app": incident.reached_app,
        "rules": cut.top(incident.rules, _ID),
        "uri_templates": cut.top(incident.uri_templates, _URI),
        "countries": cut.top(incident.countries, _ID),
        "source_ips": cut.top(incident.source_ips, _ID),
        "sample_event_keys": cut.keys([*incident.first_events, *incident.latest_events]),
        "summary": _summary_line(incident, milestone, cut),
    }
    detail["truncated"] = cut.cut
    return detail


def _encode(detail: Mapping[str, Any]) -> str:
    # Compact UTF-8: every byte counts against the entry limit, and the cleaned strings
    # hold no surrogates, so encoding cannot fail.
    return json.dumps(detail, ensure_ascii=False, separators=(",", ":"))


def render_detail(incident: IncidentRecord, milestone: Milestone) -> str:
    """The JSON detail of one milestone: the first rendering, from full size down, that
    fits ``MAX_DETAIL_BYTES``.
    """
    text = ""
    for scale in _SCALES:
        text = _encode(_detail(incident, milestone, _Cutter(scale)))
        if len(text.encode("utf-8")) <= MAX_DETAIL_BYTES:
            return text
    return text


def web_acl_arn(event: WafEvent | None) -> str | None:
    """The web ACL's ARN when the event names one (native WAF logs do), else None."""
    value = (event.web_acl or "").strip() if event is not None else ""
    if len(value) <= _MAX_ARN_CHARS and _WAF_ARN.match(value):
        return value
    return None


def event_time(incident: IncidentRecord, milestone: Milestone, now: Callable[[], datetime]) -> datetime:
    """When the milestone happened: its resolution for ``resolved``, else the incident's
    last event (a backfill's events keep their own time).
    """
    if milestone.kind == "resolved":
        resolutions = [s.at for s in incident.status_history if s.status == "resolved"]
        if resolutions:
            return datetime.fromisoformat(resolutions[-1])
        return now()
    return incident.last_seen


# ---- the channel -------------------------------------------------------------------------


class EventBridgeChannel:
    """Publishes incident milestones to one event bus (the ``IncidentChannel`` port)."""

    def __init__(
        self,
        *,
        bus: str = DEFAULT_BUS,
        client: EventBridgeClient | None = None,
        max_attempts: int = 5,
        wait: wait_base | None = None,
        now: Callable[[], datetime] = clock.now,
    ) -> None:
        """``bus`` is a name (``default`` too) or an ARN; ``client`` a boto3 ``events``
        client that makes one attempt per call (retries happen here, see
        worker/notify/retry.py); ``wait`` a tenacity wait (tests pass tiny ones).
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.bus = bus
        self._client = client or aws_client("events", max_attempts=1, read_timeout=10.0)
        self._max_attempts = max_attempts
        self._wait = wait or retry.default_wait()
        self._now = now
        self._failures = retry.Failures(
            events="eventbridge.put_",
            rejected=EventBridgeRejected,
            permanent=lambda code: _permanent(code, bus),
            invalid_reason=_INVALID_EVENT,
            failed_reason="eventbridge_failed",
            detail=lambda exc: clean(retry.error_message(exc), 300),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, client: EventBridgeClient | None = None, wait: wait_base | None = None
    ) -> Self:
        """The channel of ``SECOPS_EVENTBRIDGE_BUS`` with the notification attempt budget."""
        return cls(
            bus=settings.eventbridge_bus,
            client=client
            or aws_client(
                "events",
                region=settings.aws_region,
                max_attempts=1,
                read_timeout=10.0,
                localstack=settings.localstack,
            ),
            max_attempts=settings.notify_max_attempts,
            wait=wait,
        )

    @property
    def name(self) -> ChannelName:
        return "eventbridge"

    def entry(
        self, incident: IncidentRecord, milestone: Milestone, *, event: WafEvent | None = None
    ) -> PutEventsRequestEntryTypeDef:
        """The ``PutEvents`` entry of one milestone."""
        entry: PutEventsRequestEntryTypeDef = {
            "EventBusName": self.bus,
            "Source": SOURCE,
            "DetailType": DETAIL_TYPES[milestone.kind],
            "Time": event_time(incident, milestone, self._now),
            "Detail": render_detail(incident, milestone),
        }
        arn = web_acl_arn(event)
        if arn is not None:
            entry["Resources"] = [arn]
        return entry

    def publish_incident(
        self,
        incident: IncidentRecord,
        milestone: Milestone,
        *,
        event: WafEvent | None = None,
        analysis: Analysis | None = None,
    ) -> str:
        """Put one milestone on the bus; return its EventBridge event id.

        ``analysis`` is not published: model-written text has no place in a document
        routed to other systems, and the incident's totals already say what matters.
        Raises :class:`EventBridgeRejected` at once when retrying cannot help, and
        :class:`~worker.errors.RetryableError` (reason ``eventbridge_failed``) when the
        attempt budget is spent on throttling or internal errors.
        """
        entry = self.entry(incident, milestone, event=event)
        logger = log.bind(incident_id=incident.id, milestone=milestone.id, bus=self.bus)
        event_id, attempts = self._send(entry, incident.id, logger)
        logger.info(
            "eventbridge.put",
            event_id=event_id,
            detail_type=entry["DetailType"],
            attempts=attempts,
        )
        return event_id

    def publish_entry(self, entry: PutEventsRequestEntryTypeDef, *, what: str) -> str:
        """Put one entry of another document on this bus (a source block, see
        :mod:`worker.notify.blocks`) with the same retries; its EventBridge event id."""
        entry = {**entry, "EventBusName": self.bus}
        logger = log.bind(bus=self.bus, detail_type=entry.get("DetailType"), subject=what)
        event_id, attempts = self._send(entry, what, logger)
        logger.info("eventbridge.put", event_id=event_id, attempts=attempts)
        return event_id

    def _send(self, entry: PutEventsRequestEntryTypeDef, what: str, logger: Any) -> tuple[str, int]:
        """Put ``entry`` with the channel's retries: its event id and the attempts taken."""
        event_id, attempts = retry.call(
            partial(self._put, entry),
            failures=self._failures,
            max_attempts=self._max_attempts,
            wait=self._wait,
            logger=logger,
            not_sent=f"EventBridge event for {what}",
            refused=f"EventBridge refused the event for {what} on bus {self.bus!r}",
            failed=f"EventBridge put on bus {self.bus!r}",
        )
        return event_id, attempts

    def _put(self, entry: PutEventsRequestEntryTypeDef) -> str:
        """One ``PutEvents`` call; a failed entry raises a ClientError with its code.

        One entry per call, so resending "only the failed entries" is resending it.
        """
        response = self._client.put_events(Entries=[entry])
        results = response.get("Entries") or [{}]
        result = results[0]
        if int(response.get("FailedEntryCount") or 0) or "ErrorCode" in result:
            raise _entry_error(
                str(result.get("ErrorCode") or "Unknown"), str(result.get("ErrorMessage") or "")
            )
        return str(result["EventId"])
