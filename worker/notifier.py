"""SNS notifications: escalations to the critical topic, patterns to the monitoring topic.

Everything an attacker wrote (URI, user agent, rule names of custom rules, the model's
text about them) ends up in an e-mail subject or a chat message, so every string is
cleaned before it leaves: the subject is reduced to what SNS accepts (printable ASCII,
at most 100 characters), the body to single-line fields with control and invisible
characters removed, followed by a ``--- JSON ---`` line and a JSON document with the
same facts that always parses, whatever was cut to stay under SNS's size limit.

Publishing retries transient failures (throttling, 5xx, connection errors) with
exponential jitter; a permanent failure raises :class:`NotificationRejected` at once,
and exhausted retries raise :class:`~worker.errors.RetryableError` so the consumer
redelivers the message later. Marking a notification as sent is the caller's job.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    ParamValidationError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential_jitter

from secops_core.contract import Analysis, Pattern, TriageDecision, WafEvent
from secops_core.text import TRUNCATION_SUFFIX, sanitize_text
from worker.aws import client as aws_client
from worker.errors import ConfigurationError, RetryableError

log = structlog.get_logger(__name__)

NotificationKind = Literal["escalation", "pattern"]

# ---- limits (SNS's own, and ours below them) -------------------------------------------

# SNS accepts subjects of up to 100 printable ASCII characters (the docs say "less than
# 100"; the service and moto accept exactly 100).
SUBJECT_MAX_CHARS = 100
SUBJECT_FALLBACK = "SecOps notification"
SUBJECT_ELLIPSIS = "..."
# Work on a hostile subject is bounded: only this much of the input is examined.
_SUBJECT_SCAN_CHARS = 4096

# SNS caps a whole publish (message, subject and attributes) at 256 KiB. The body stays
# at a quarter of that: an SQS subscriber without raw delivery receives it JSON-escaped
# inside the SNS envelope, where one non-ASCII character can take up to three times its
# UTF-8 size, and a human reading a notification needs far less anyway.
MAX_BODY_BYTES = 64 * 1024
# The line between the readable summary and the machine-readable document.
JSON_SEPARATOR = "--- JSON ---"

# SNS attribute values may be long, but these are filter keys, not payloads.
_ATTRIBUTE_MAX_CHARS = 256
_ATTRIBUTE_FALLBACK = "unknown"
# FIFO message group ids: at most 128 printable ASCII characters without spaces.
_GROUP_ID_MAX_CHARS = 128

# Field limits of the body at full size, in characters; each is divided by the scale of
# a rendering attempt (see ``_render``) when the first attempt does not fit.
_SHORT = 64  # method, action, country, IP, severity labels
_ID = 512  # event ids, rule ids, labels, ARNs: short in every AWS schema
_HOST = 256
_URI_SUMMARY = 512  # enough for an operator to recognize the request in the summary
_URI_JSON = 4096
_ARGS_JSON = 2048
_USER_AGENT = 1024
_ANALYSIS = 8000
_FOLLOW_UP = 4000
_REASON = 2000
_NARRATIVE = 8000
# List lengths at full size: enough to show what fired without flooding a mailbox.
_MAX_MATCHES = 20
_MAX_LABELS = 20
_MAX_HEADER_NAMES = 20
_MAX_RULES = 20
_MAX_EVENT_KEYS = 50
# Successive scales tried until the body fits. At the last one every field is a few
# dozen characters and every list has one item, so it fits by construction.
_SCALES = (1, 2, 4, 8, 32)

# ---- error classification ----------------------------------------------------------------

# Codes worth retrying: throttling (including SNS's KMS throttling on encrypted topics)
# and the service's own internal errors. Any 5xx answer is retried too, whatever its code.
_TRANSIENT_CODES = frozenset(
    {
        "Throttled",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "KMSThrottling",
        "KMSThrottlingException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# Permanent codes and the reason and hint reported for them; others get a generic one.
_PERMANENT: dict[str, tuple[str, str]] = {
    "NotFound": ("notify_topic_not_found", "the topic does not exist; run `secops setup`"),
    "NotFoundException": ("notify_topic_not_found", "the topic does not exist; run `secops setup`"),
    "AuthorizationError": (
        "notify_not_authorized",
        "the worker's role lacks sns:Publish on the topic",
    ),
    "AccessDenied": ("notify_not_authorized", "the worker's role lacks sns:Publish on the topic"),
    "AccessDeniedException": (
        "notify_not_authorized",
        "the worker's role lacks sns:Publish on the topic",
    ),
    "InvalidClientTokenId": ("notify_not_authorized", "the worker's credentials are not valid"),
    "KMSAccessDenied": (
        "notify_not_authorized",
        "the worker's role cannot use the topic's KMS key",
    ),
    "InvalidParameter": ("notify_invalid_parameter", "SNS refused the request's parameters"),
    "InvalidParameterValue": ("notify_invalid_parameter", "SNS refused a parameter value"),
    "ParameterValueInvalid": ("notify_invalid_parameter", "SNS refused a parameter value"),
    "ValidationError": ("notify_invalid_parameter", "SNS refused the request's parameters"),
    # A FIFO topic published to without a group id (a Notification built by hand).
    "MissingParameter": ("notify_invalid_parameter", "SNS needs a parameter the request lacks"),
}
_DEFAULT_PERMANENT = ("notify_rejected", "SNS refused the notification")


class NotificationRejected(ConfigurationError):
    """SNS refused a publish for a reason that retrying cannot fix (topic, IAM, input).

    A configuration error, not bad input: the event's state is saved and the message
    comes back once the deployment is fixed, instead of landing in the DLQ.

    ``reason`` is ``notify_topic_not_found``, ``notify_not_authorized``,
    ``notify_invalid_parameter`` or ``notify_rejected``; ``code`` is SNS's error code.
    """

    def __init__(self, message: str, *, reason: str, code: str) -> None:
        super().__init__(message, reason=reason)
        self.code = code


@dataclass(frozen=True)
class Notification:
    """One message to publish, already rendered and sanitized."""

    topic_arn: str
    subject: str
    message: str
    attributes: dict[str, str]
    # Both set for FIFO topics only; SNS rejects them on standard topics.
    dedup_id: str | None
    group_id: str | None


# ---- sanitizing ----------------------------------------------------------------------------

# Line breaks (including NEL and the file/group/record separators that str.splitlines
# honours), tabs and every other Unicode space become a plain space, so words stay apart.
_BREAKS = frozenset("\t\n\r\v\f\x1c\x1d\x1e\x85")
_SPACE_CATEGORIES = frozenset({"Zs", "Zl", "Zp"})
# Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned
# characters have no visible ASCII form; combining marks are what NFKD split off a letter.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})
# Valid in a Python str and kept by ``sanitize_text``, but not in SNS's XML character set.
_XML_ILLEGAL = {0xFFFE: None, 0xFFFF: None}


def _subject_char(ch: str) -> str:
    """One NFKD-decomposed character as printable ASCII, a space, nothing, or ``?``."""
    if " " <= ch <= "~":
        return ch
    if ch in _BREAKS or unicodedata.category(ch) in _SPACE_CATEGORIES:
        return " "
    if unicodedata.category(ch) in _DROPPED_CATEGORIES:
        return ""
    return "?"


def _ascii_line(text: str) -> tuple[str, bool]:
    """``text`` as one line of printable ASCII (maybe empty), and whether it was cut."""
    window = text[:_SUBJECT_SCAN_CHARS]
    decomposed = unicodedata.normalize("NFKD", window)
    return " ".join("".join(map(_subject_char, decomposed)).split()), len(window) < len(text)


def _shorten(text: str, limit: int, cut: bool) -> str:
    if len(text) <= limit and not cut:
        return text
    return text[: limit - len(SUBJECT_ELLIPSIS)].rstrip() + SUBJECT_ELLIPSIS


def sanitize_subject(text: str) -> str:
    """Return ``text`` as a valid SNS subject: 1 to 100 printable ASCII characters.

    Line breaks, tabs and Unicode spaces become single spaces; control and invisible
    characters are removed; accented letters lose their accents (NFKD) and any other
    non-ASCII character becomes ``?``. The result never starts or ends with whitespace,
    is cut to 100 characters ending in ``...`` when longer, and falls back to
    ``SUBJECT_FALLBACK`` when nothing printable is left. Only the first few KiB of the
    input are examined, so a huge hostile value costs no more than a short one.
    """
    ascii_text, cut = _ascii_line(text)
    if not ascii_text:
        return SUBJECT_FALLBACK
    return _shorten(ascii_text, SUBJECT_MAX_CHARS, cut)


def _subject_part(value: str | None, limit: int) -> str:
    """One untrusted piece of a subject, so a long rule name cannot crowd out the rest."""
    ascii_text, cut = _ascii_line(value or "")
    return _shorten(ascii_text, limit, cut) if ascii_text else ""


def _clean(value: object, limit: int) -> str:
    """One untrusted value as a single line without control or invisible characters."""
    if value is None:
        return ""
    return sanitize_text(str(value), limit).translate(_XML_ILLEGAL)


def _attribute_value(value: object) -> str:
    """A String message attribute value: never empty, within SNS's character set."""
    return _clean(value, _ATTRIBUTE_MAX_CHARS) or _ATTRIBUTE_FALLBACK


def _sanitize_attributes(attributes: dict[str, str]) -> dict[str, str]:
    return {name: _attribute_value(value) for name, value in attributes.items()}


def _dedup_id(kind: NotificationKind, *parts: object) -> str:
    """A stable id for one notification, so SNS drops a retried publish of it."""
    material = "\x00".join([kind, *map(str, parts)])
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def _group_id(preferred: str, fallback: str) -> str:
    """A FIFO message group id (printable ASCII without spaces), from an IP if usable."""
    cleaned = "".join(ch for ch in preferred[:_GROUP_ID_MAX_CHARS] if "!" <= ch <= "~")
    return cleaned or hashlib.sha256(fallback.encode("utf-8", "surrogatepass")).hexdigest()


def _is_fifo(topic_arn: str) -> bool:
    return topic_arn.endswith(".fifo")


# ---- rendering -----------------------------------------------------------------------------


@dataclass
class _Cutter:
    """Applies one rendering attempt's scaled limits and remembers whether it cut anything."""

    scale: int
    cut: bool = field(default=False)

    def limit(self, base: int) -> int:
        return max(base // self.scale, 16)

    def line(self, value: object, base: int) -> str:
        """A single-line, cleaned value for the summary; ``-`` when empty."""
        if value is None:
            return "-"
        text = str(value)
        cleaned = _clean(text, self.limit(base))
        if cleaned.endswith(TRUNCATION_SUFFIX) and not text.endswith(TRUNCATION_SUFFIX):
            self.cut = True
        return cleaned or "-"

    def block(self, value: str, base: int) -> str:
        """Multi-line text for the summary, indented so none of it starts a line.

        Each line is cleaned on its own; the indent means untrusted text can never forge
        a summary field or the ``--- JSON ---`` separator.
        """
        limit = self.limit(base)
        # Text far past the limit would be cut anyway; it is not worth scanning.
        window = value[: limit * 4]
        lines = [line for line in (_clean(raw, limit) for raw in window.splitlines()) if line]
        joined = "\n".join(lines)
        if len(joined) > limit or len(window) < len(value):
            self.cut = True
            joined = joined[: max(limit - len(TRUNCATION_SUFFIX), 0)].rstrip() + TRUNCATION_SUFFIX
        return textwrap.indent(joined or "-", "  ")

    def raw(self, value: str | None, base: int) -> str | None:
        """A value for the JSON document: verbatim (JSON escapes it), only shortened."""
        if value is None:
            return None
        limit = self.limit(base)
        if len(value) <= limit:
            return value
        self.cut = True
        return value[: limit - len(TRUNCATION_SUFFIX)] + TRUNCATION_SUFFIX

    def items(self, values: Sequence[Any], base: int) -> list[Any]:
        count = max(base // self.scale, 1)
        if len(values) > count:
            self.cut = True
        return list(values[:count])


def _render(build: Callable[[_Cutter], tuple[str, dict[str, Any]]]) -> str:
    """The first rendering, from full size down, whose UTF-8 body fits ``MAX_BODY_BYTES``."""
    body = ""
    for scale in _SCALES:
        cutter = _Cutter(scale)
        summary, document = build(cutter)
        document["truncated"] = cutter.cut
        # ASCII-only JSON cannot be mangled by any transport's character handling, and
        # escaping keeps lone surrogates in hostile input from failing the UTF-8 encoding.
        body = f"{summary}\n\n{JSON_SEPARATOR}\n{json.dumps(document, ensure_ascii=True, indent=2)}\n"
        if len(body.encode("utf-8")) <= MAX_BODY_BYTES:
            return body
    return body


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _event_document(event: WafEvent, cut: _Cutter) -> dict[str, Any]:
    """The event's facts for the JSON part. Header values are never included."""
    return {
        "event_key": cut.raw(event.event_key, _ID),
        "event_id": cut.raw(event.event_id, _ID),
        "source_format": event.source_format,
        "timestamp": event.timestamp.isoformat(),
        "action": cut.raw(event.action, _SHORT),
        "source_ip": cut.raw(event.source_ip, _SHORT),
        "country": cut.raw(event.country, _SHORT),
        "http_method": cut.raw(event.http_method, _SHORT),
        "host": cut.raw(event.host, _HOST),
        "uri": cut.raw(event.uri, _URI_JSON),
        "args": cut.raw(event.args, _ARGS_JSON),
        "user_agent": cut.raw(event.user_agent, _USER_AGENT),
        # Names only: values may hold what redaction did not recognize as a secret.
        "header_names": [
            cut.raw(header.name, _SHORT) for header in cut.items(event.headers, _MAX_HEADER_NAMES)
        ],
        "rule_name": cut.raw(event.rule_name, _ID),
        "rule_group": cut.raw(event.rule_group, _ID),
        "terminating_rule_type": cut.raw(event.terminating_rule_type, _SHORT),
        "matches": [
            {
                "rule_id": cut.raw(match.rule_id, _ID),
                "rule_group": cut.raw(match.rule_group, _ID),
                "action": cut.raw(match.action, _SHORT),
                "terminating": match.terminating,
                "condition_types": [
                    cut.raw(condition, _SHORT) for condition in cut.items(match.condition_types, _MAX_MATCHES)
                ],
            }
            for match in cut.items(event.matches, _MAX_MATCHES)
        ],
        "labels": [cut.raw(label, _ID) for label in cut.items(event.labels, _MAX_LABELS)],
        "request_id": cut.raw(event.request_id, _ID),
        "web_acl": cut.raw(event.web_acl, _ID),
        "truncated_by_normalization": event.truncated,
    }


def _request_line(event: WafEvent, cut: _Cutter) -> str:
    method = cut.line(event.http_method, _SHORT) if event.http_method else ""
    host = cut.line(event.host, _HOST) if event.host else ""
    return " ".join(part for part in (method, host + cut.line(event.uri, _URI_SUMMARY)) if part)


def escalation_notification(
    topic_arn: str,
    *,
    event: WafEvent,
    analysis: Analysis,
    triage: TriageDecision,
    event_key: str,
) -> Notification:
    """Render the critical notification for one escalated event.

    The subject reads ``[SecOps] ESCALATE sev 5 SQLi_BODY from 198.51.100.23 POST
    /login.php``; the body is a readable summary, a ``--- JSON ---`` line and a JSON
    document with the same facts (the already redacted event without header values).
    On a FIFO topic the deduplication id is derived from the event key, so a retried
    publish of the same escalation is dropped by SNS within its five-minute window.
    """
    severity = triage.severity_rating
    subject = sanitize_subject(
        f"[SecOps] ESCALATE sev {severity} {_subject_part(event.rule_name, 40)} "
        f"from {_subject_part(event.source_ip, 45)} {_subject_part(event.http_method, 10)} "
        f"{_subject_part(event.uri, SUBJECT_MAX_CHARS)}"
    )

    def build(cut: _Cutter) -> tuple[str, dict[str, Any]]:
        country = f" ({cut.line(event.country, _SHORT)})" if event.country else ""
        group = f" (group {cut.line(event.rule_group, _ID)})" if event.rule_group else ""
        model = "-" if analysis.model_severity is None else str(analysis.model_severity)
        summary = "\n".join(
            [
                f"SecOps escalation: severity {severity}, {cut.line(analysis.attack_type, _ID)}",
                "",
                f"Event key:    {cut.line(event_key, _ID)}",
                f"Time:         {event.timestamp.isoformat()}",
                f"Source IP:    {cut.line(event.source_ip, _SHORT)}{country}",
                f"Request:      {_request_line(event, cut)}",
                f"Rule:         {cut.line(event.rule_name, _ID)}{group}",
                f"WAF action:   {cut.line(event.action, _SHORT)}",
                f"Severity:     final {analysis.severity_rating}, "
                f"floor {analysis.severity_floor}, model {model}",
                f"Analyzed by:  {cut.line(analysis.analyzed_by, _ID)}",
                f"Degraded:     {_yes_no(analysis.degraded)}",
                f"Triage:       {triage.action} -> {triage.status}: {cut.line(triage.reason, _REASON)}",
                "",
                "Analysis:",
                cut.block(analysis.security_analysis, _ANALYSIS),
                "",
                "Follow-up:",
                cut.block(analysis.follow_up_suggestion, _FOLLOW_UP),
            ]
        )
        floor = analysis.floor
        document: dict[str, Any] = {
            "kind": "escalation",
            "version": 1,
            "event_key": cut.raw(event_key, _ID),
            "severity": severity,
            "event": _event_document(event, cut),
            "analysis": {
                "severity_rating": analysis.severity_rating,
                "severity_floor": analysis.severity_floor,
                "model_severity": analysis.model_severity,
                "attack_type": cut.raw(analysis.attack_type, _ID),
                "analyzed_by": cut.raw(analysis.analyzed_by, _ID),
                "degraded": analysis.degraded,
                "security_analysis": cut.raw(analysis.security_analysis, _ANALYSIS),
                "follow_up_suggestion": cut.raw(analysis.follow_up_suggestion, _FOLLOW_UP),
                "floor": None
                if floor is None
                else {
                    "severity": floor.severity,
                    "attack_class": cut.raw(floor.attack_class, _ID),
                    "reason": cut.raw(floor.reason, _REASON),
                    "rule": cut.raw(floor.rule, _ID),
                },
            },
            "triage": {
                "action": triage.action,
                "status": triage.status,
                "severity_rating": triage.severity_rating,
                "reason": cut.raw(triage.reason, _REASON),
            },
        }
        return summary, document

    fifo = _is_fifo(topic_arn)
    return Notification(
        topic_arn=topic_arn,
        subject=subject,
        message=_render(build),
        attributes=_sanitize_attributes(
            {
                "event_key": event_key,
                "severity": str(severity),
                "workflow": "analyze",
                "action": "escalate",
                "source_ip": event.source_ip,
            }
        ),
        dedup_id=_dedup_id("escalation", event_key) if fifo else None,
        group_id=_group_id(event.source_ip, event_key) if fifo else None,
    )


def pattern_notification(
    topic_arn: str,
    *,
    pattern: Pattern,
    escalated_keys: Sequence[str],
    grown_from: int | None,
) -> Notification:
    """Render the monitoring notification for a new pattern, or one that grew.

    ``escalated_keys`` are the member events escalated because the pattern met its
    threshold; ``grown_from`` is the count last notified, when this is a re-notification.
    The FIFO deduplication id covers the pattern key and its count, so a retry is
    dropped while a later, larger pattern is still delivered.
    """
    growth = f"grew {grown_from}->{pattern.count}" if grown_from is not None else ""
    subject = sanitize_subject(
        f"[SecOps] PATTERN {growth or pattern.count} events sev {pattern.max_severity} "
        f"from {_subject_part(pattern.source_ip, 45)} "
        f"{_subject_part(pattern.normalized_uri, SUBJECT_MAX_CHARS)}"
    )

    def build(cut: _Cutter) -> tuple[str, dict[str, Any]]:
        rules = ", ".join(cut.line(rule, _ID) for rule in cut.items(pattern.rules, _MAX_RULES))
        listed = cut.items(escalated_keys, _MAX_EVENT_KEYS)
        more = len(escalated_keys) - len(listed)
        escalated_lines = [f"  {cut.line(key, _ID)}" for key in listed]
        if more:
            escalated_lines.append(f"  ... and {more} more")
        summary = "\n".join(
            [
                f"SecOps monitoring pattern: {pattern.count} events from "
                f"{cut.line(pattern.source_ip, _SHORT)}",
                "",
                f"Pattern key:  {cut.line(pattern.pattern_key, _ID)}",
                f"Source IP:    {cut.line(pattern.source_ip, _SHORT)}",
                f"URI:          {cut.line(pattern.normalized_uri, _URI_SUMMARY)}",
                f"Events:       {pattern.count}"
                + (f" (grew from {grown_from})" if grown_from is not None else ""),
                f"Threshold:    {pattern.threshold} (met: {_yes_no(pattern.threshold_met)})",
                f"Max severity: {pattern.max_severity}",
                f"First seen:   {pattern.first_seen.isoformat()}",
                f"Last seen:    {pattern.last_seen.isoformat()}",
                f"Rules:        {rules or '-'}",
                f"Escalated:    {len(escalated_keys)} events",
                *escalated_lines,
                "",
                "Narrative:",
                cut.block(pattern.narrative, _NARRATIVE),
            ]
        )
        document: dict[str, Any] = {
            "kind": "pattern",
            "version": 1,
            "pattern_key": cut.raw(pattern.pattern_key, _ID),
            "severity": pattern.max_severity,
            "grown_from": grown_from,
            "pattern": {
                "source_ip": cut.raw(pattern.source_ip, _SHORT),
                "normalized_uri": cut.raw(pattern.normalized_uri, _URI_JSON),
                "count": pattern.count,
                "first_seen": pattern.first_seen.isoformat(),
                "last_seen": pattern.last_seen.isoformat(),
                "rules": [cut.raw(rule, _ID) for rule in cut.items(pattern.rules, _MAX_RULES)],
                "event_keys": [cut.raw(key, _ID) for key in cut.items(pattern.event_keys, _MAX_EVENT_KEYS)],
                "event_keys_total": len(pattern.event_keys),
                "max_severity": pattern.max_severity,
                "threshold": pattern.threshold,
                "threshold_met": pattern.threshold_met,
                "narrative": cut.raw(pattern.narrative, _NARRATIVE),
            },
            "escalated_keys": [cut.raw(key, _ID) for key in listed],
            "escalated_total": len(escalated_keys),
        }
        return summary, document

    fifo = _is_fifo(topic_arn)
    return Notification(
        topic_arn=topic_arn,
        subject=subject,
        message=_render(build),
        attributes=_sanitize_attributes(
            {
                "event_key": pattern.pattern_key,
                "severity": str(pattern.max_severity),
                "workflow": "monitor",
                "action": "pattern",
                "source_ip": pattern.source_ip,
            }
        ),
        dedup_id=_dedup_id("pattern", pattern.pattern_key, pattern.count) if fifo else None,
        group_id=_group_id(pattern.source_ip, pattern.pattern_key) if fifo else None,
    )


# ---- publishing ----------------------------------------------------------------------------


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "Unknown")
    return type(exc).__name__


def _is_transient(exc: BaseException) -> bool:
    """Whether a failed publish is worth retrying in this process."""
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return _error_code(exc) in _TRANSIENT_CODES or int(status) >= 500
    return False


class Notifier:
    """Publishes escalations and patterns to their SNS topics, with bounded retries."""

    def __init__(
        self,
        *,
        critical_topic_arn: str,
        monitoring_topic_arn: str,
        client: Any = None,
        max_attempts: int = 5,
        wait: wait_base | None = None,
    ) -> None:
        """``client`` is a boto3 SNS client; ``wait`` a tenacity wait (tests pass tiny ones).

        The default client makes a single attempt per call with a short read timeout:
        retries happen here only, so each one is logged and counted against
        ``max_attempts`` instead of multiplying with botocore's own. With the default
        wait (0.5 s doubling to 8 s) five attempts take seconds, well inside a lease.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.critical_topic_arn = critical_topic_arn
        self.monitoring_topic_arn = monitoring_topic_arn
        self._client = client or aws_client("sns", max_attempts=1, read_timeout=10.0)
        self._max_attempts = max_attempts
        self._wait = wait or wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)

    def notify_escalation(self, event: WafEvent, analysis: Analysis, triage: TriageDecision) -> str:
        """Publish the critical notification for ``event``; return SNS's MessageId."""
        return self.publish(
            escalation_notification(
                self.critical_topic_arn,
                event=event,
                analysis=analysis,
                triage=triage,
                event_key=event.event_key,
            )
        )

    def notify_pattern(
        self,
        pattern: Pattern,
        *,
        escalated_keys: Sequence[str],
        grown_from: int | None = None,
    ) -> str:
        """Publish the monitoring notification for ``pattern``; return SNS's MessageId."""
        return self.publish(
            pattern_notification(
                self.monitoring_topic_arn,
                pattern=pattern,
                escalated_keys=escalated_keys,
                grown_from=grown_from,
            )
        )

    def publish(self, notification: Notification) -> str:
        """Publish one notification, retrying transient failures; return the MessageId.

        Raises :class:`NotificationRejected` at once when SNS refuses it for good (no
        such topic, not authorized, invalid parameter), and
        :class:`~worker.errors.RetryableError` with reason ``notify_failed`` when retries
        are exhausted or the call could not be made, so the message is redelivered later.
        """
        attributes = _sanitize_attributes(notification.attributes)
        logger = log.bind(
            event_key=attributes.get("event_key"),
            action=attributes.get("action"),
            topic_arn=notification.topic_arn,
        )
        request: dict[str, Any] = {
            "TopicArn": notification.topic_arn,
            # Sanitizing again costs nothing and covers a Notification built by hand.
            "Subject": sanitize_subject(notification.subject),
            "Message": notification.message,
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
            },
        }
        if notification.dedup_id is not None:
            request["MessageDeduplicationId"] = notification.dedup_id
        if notification.group_id is not None:
            request["MessageGroupId"] = notification.group_id

        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_is_transient),
            before_sleep=_log_retry(logger),
            reraise=True,
        )
        try:
            response = retrying(self._client.publish, **request)
        except ParamValidationError as exc:
            logger.error("sns.publish_rejected", error_code="ParamValidationError")
            raise NotificationRejected(
                f"SNS publish to {notification.topic_arn} was not sent: invalid request: {exc}",
                reason="notify_invalid_parameter",
                code="ParamValidationError",
            ) from exc
        except (ClientError, BotoCoreError) as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            code = _error_code(exc)
            if isinstance(exc, ClientError) and not _is_transient(exc):
                reason, hint = _PERMANENT.get(code, _DEFAULT_PERMANENT)
                logger.error("sns.publish_rejected", error_code=code, reason=reason)
                raise NotificationRejected(
                    f"SNS refused to publish to {notification.topic_arn} "
                    f"({code}: {exc.response.get('Error', {}).get('Message', '')}): {hint}",
                    reason=reason,
                    code=code,
                ) from exc
            # Transient failures past the budget, and client-side failures such as
            # missing credentials, are worth another try once the message comes back.
            logger.error("sns.publish_failed", error_code=code, attempts=attempts)
            raise RetryableError(
                f"SNS publish to {notification.topic_arn} failed after {attempts} attempt(s): {code}",
                reason="notify_failed",
            ) from exc
        message_id = str(response["MessageId"])
        logger.info(
            "sns.published",
            message_id=message_id,
            attempts=retrying.statistics.get("attempt_number", 1),
            fifo=notification.group_id is not None,
        )
        return message_id


def _log_retry(logger: Any) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            "sns.publish_retry",
            attempt=state.attempt_number,
            error_code=_error_code(exc) if exc else None,
            sleep_s=round(state.next_action.sleep, 3) if state.next_action else None,
        )

    return before_sleep


def create_topics(sns_client: Any, names: Sequence[str]) -> dict[str, str]:
    """Create the topics ``names`` (idempotent) and return ``{name: TopicArn}``.

    CreateTopic returns the existing ARN for a topic that already exists with the same
    attributes. A name ending in ``.fifo`` is created as a FIFO topic; notifications
    carry explicit deduplication ids, so content-based deduplication stays off.
    """
    arns: dict[str, str] = {}
    for name in names:
        attributes = {"FifoTopic": "true"} if name.endswith(".fifo") else {}
        response = sns_client.create_topic(Name=name, Attributes=attributes)
        arns[name] = str(response["TopicArn"])
    return arns
