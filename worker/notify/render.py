"""Notifications rendered from the pipeline's facts: a readable summary and a JSON document.

The body is the summary (single-line fields, multi-line text indented so it can never
forge a field), a ``--- JSON ---`` line and a JSON document with the same facts that
always parses, whatever was cut to stay under SNS's size limit: rendering starts at
full size and shrinks every field until the body fits.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from secops_core.contract import Analysis, Pattern, WafEvent
from secops_core.text import TRUNCATION_SUFFIX
from worker.incidents import IncidentRecord, Milestone
from worker.notify.sanitize import (
    SUBJECT_MAX_CHARS,
    clean,
    dedup_id,
    group_id,
    is_fifo,
    sanitize_attributes,
    sanitize_subject,
    subject_part,
)

# SNS caps a whole publish (message, subject and attributes) at 256 KiB. The body stays
# at a quarter of that: an SQS subscriber without raw delivery receives it JSON-escaped
# inside the SNS envelope, where one non-ASCII character can take up to three times its
# UTF-8 size, and a human reading a notification needs far less anyway.
MAX_BODY_BYTES = 64 * 1024
# The line between the readable summary and the machine-readable document.
JSON_SEPARATOR = "--- JSON ---"

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
_MAX_COUNTS = 10  # the top entries of an incident's rule / URI / country counts
# Successive scales tried until the body fits. At the last one every field is a few
# dozen characters and every list has one item, so it fits by construction.
_SCALES = (1, 2, 4, 8, 32)


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
        cleaned = clean(text, self.limit(base))
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
        lines = [line for line in (clean(raw, limit) for raw in window.splitlines()) if line]
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


def _overruled(analysis: Analysis) -> bool:
    """The model rated below the floor: flagged by the runtime, or seen here for a record
    written before the runtime flagged it."""
    below = analysis.model_severity is not None and analysis.model_severity < analysis.severity_floor
    return analysis.model_overruled or (analysis.model_written and below)


def _opinion_author(analysis: Analysis) -> str:
    if analysis.model_opinion is not None:
        return analysis.model_opinion.model_id
    return analysis.analyzed_by if analysis.model_written else "the model"


def shown_analysis(event: WafEvent, analysis: Analysis) -> Analysis:
    """The analysis a person is shown: never the words of a model that was overruled.

    The runtime already replaces an overruled model's text with the rules analysis; a
    record that still carries model text rated below the floor gets the rules text here
    (docs/architecture.md, "Model fail-safe").
    """
    if not (_overruled(analysis) and analysis.model_written):
        return analysis
    from secops_core.rules_analysis import rules_analysis
    from secops_core.waf.floor import severity_floor

    rules = rules_analysis(event, analysis.floor or severity_floor(event))
    return analysis.model_copy(
        update={
            "security_analysis": rules.security_analysis,
            "follow_up_suggestion": rules.follow_up_suggestion,
            "attack_type": rules.attack_type,
            "analyzed_by": rules.analyzed_by,
            "model_written": False,
        }
    )


def narrative_label(pattern: Pattern) -> str:
    """What a person reading a pattern's narrative is told about its author."""
    if pattern.narrative_model_written:
        author = clean(pattern.narrative_by, _ID)
        return f" (MODEL-WRITTEN by {author}, untrusted: about attacker-controlled traffic)"
    return ""


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
        f"from {subject_part(pattern.source_ip, 45)} "
        f"{subject_part(pattern.normalized_uri, SUBJECT_MAX_CHARS)}"
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
                f"Narrative{narrative_label(pattern)}:",
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
                "narrative_by": cut.raw(pattern.narrative_by, _ID),
                "narrative_model_written": pattern.narrative_model_written,
            },
            "escalated_keys": [cut.raw(key, _ID) for key in listed],
            "escalated_total": len(escalated_keys),
        }
        return summary, document

    fifo = is_fifo(topic_arn)
    return Notification(
        topic_arn=topic_arn,
        subject=subject,
        message=_render(build),
        attributes=sanitize_attributes(
            {
                "event_key": pattern.pattern_key,
                "severity": str(pattern.max_severity),
                "workflow": "monitor",
                "action": "pattern",
                "source_ip": pattern.source_ip,
            }
        ),
        dedup_id=dedup_id("pattern", pattern.pattern_key, pattern.count) if fifo else None,
        group_id=group_id(pattern.source_ip, pattern.pattern_key) if fifo else None,
    )


def _ranked(counts: dict[str, int] | Any, cut: _Cutter) -> list[tuple[str, int]]:
    """The top entries of an incident's counts, most first (ties by name), as many as fit."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return cut.items(ranked, _MAX_COUNTS)


def _top(counts: dict[str, int] | Any, cut: _Cutter) -> list[tuple[str, int]]:
    return [(cut.raw(name, _ID) or "", count) for name, count in _ranked(counts, cut)]


def _top_line(counts: dict[str, int] | Any, cut: _Cutter) -> str:
    return ", ".join(f"{cut.line(name, _ID)} ({count})" for name, count in _ranked(counts, cut)) or "-"


def incident_notification(
    topic_arn: str,
    *,
    incident: IncidentRecord,
    milestone: Milestone,
    event: WafEvent | None,
    analysis: Analysis | None,
) -> Notification:
    """Render one incident milestone: what changed, the totals, and the event that
    crossed it (with its analysis) when there is one.

    The subject reads ``[SecOps] INCIDENT opened sev 5 sqli from 198.51.100.23 (1 events)``.
    On a FIFO topic the deduplication id is the incident and the milestone, so a retried
    publish of one milestone is dropped while the next milestone is delivered.
    """
    severity = incident.max_severity
    subject = sanitize_subject(
        f"[SecOps] INCIDENT {subject_part(milestone.id, 20)} sev {severity} "
        f"{subject_part(incident.attack_class, 30)} from {subject_part(incident.source, 45)} "
        f"({incident.count} events)"
    )

    # A person never reads an overruled model's words (see shown_analysis).
    shown = shown_analysis(event, analysis) if event is not None and analysis is not None else analysis
    overruled = analysis is not None and _overruled(analysis)

    def build(cut: _Cutter) -> tuple[str, dict[str, Any]]:
        lines = [
            f"SecOps incident {cut.line(milestone.kind, _SHORT)}: {cut.line(milestone.summary, _REASON)}",
            "",
            f"Incident:     {cut.line(incident.id, _ID)} ({incident.status})",
            f"Grouped by:   {incident.group_by}: {cut.line(incident.group.text, _ID)}",
            f"Attack class: {cut.line(incident.attack_class, _ID)}",
            f"Source:       {cut.line(incident.source, _SHORT)}",
            f"Events:       {incident.count} ({incident.reached_app} reached the application)",
            f"Severity:     highest {severity}",
            f"First seen:   {incident.first_seen.isoformat()}",
            f"Last seen:    {incident.last_seen.isoformat()}",
            f"Rules:        {_top_line(incident.rules, cut)}",
            f"URIs:         {_top_line(incident.uri_templates, cut)}",
            f"Countries:    {_top_line(incident.countries, cut)}",
            f"Source IPs:   {_top_line(incident.source_ips, cut)}",
        ]
        if event is not None:
            lines += [
                "",
                f"Latest event: {cut.line(event.event_key, _ID)}",
                f"Request:      {_request_line(event, cut)}",
                f"WAF action:   {cut.line(event.action, _SHORT)}",
            ]
        if analysis is not None and shown is not None:
            author = cut.line(shown.analyzed_by, _ID)
            by_model = f" (MODEL-WRITTEN by {author}, untrusted)" if shown.model_written else ""
            lines += [f"Analyzed by:  {author}", ""]
            if overruled:
                lines += [
                    f"MODEL OVERRULED: {cut.line(_opinion_author(analysis), _ID)} rated severity "
                    f"{analysis.model_severity}, below the floor {analysis.severity_floor}; its words",
                    "  are not shown (a likely prompt injection): the analysis below is the rules'.",
                    "",
                ]
            lines += [
                f"Analysis{by_model}:",
                cut.block(shown.security_analysis, _ANALYSIS),
                "",
                f"Follow-up{by_model}:",
                cut.block(shown.follow_up_suggestion, _FOLLOW_UP),
            ]
        document: dict[str, Any] = {
            "kind": "incident",
            "version": 1,
            "incident_id": cut.raw(incident.id, _ID),
            "severity": severity,
            "milestone": {
                "id": cut.raw(milestone.id, _ID),
                "kind": milestone.kind,
                "summary": cut.raw(milestone.summary, _REASON),
            },
            "incident": {
                "status": incident.status,
                "group_by": incident.group_by,
                "source": cut.raw(incident.source, _SHORT),
                "attack_class": cut.raw(incident.attack_class, _ID),
                "target": cut.raw(incident.target, _URI_JSON),
                "count": incident.count,
                "reached_app": incident.reached_app,
                "max_severity": severity,
                "first_seen": incident.first_seen.isoformat(),
                "last_seen": incident.last_seen.isoformat(),
                "rules": _top(incident.rules, cut),
                "uri_templates": _top(incident.uri_templates, cut),
                "countries": _top(incident.countries, cut),
                "source_ips": _top(incident.source_ips, cut),
                "first_events": [cut.raw(k, _ID) for k in cut.items(incident.first_events, _MAX_EVENT_KEYS)],
                "latest_events": [
                    cut.raw(k, _ID) for k in cut.items(incident.latest_events, _MAX_EVENT_KEYS)
                ],
            },
            "event": None if event is None else _event_document(event, cut),
            "analysis": None
            if analysis is None or shown is None
            else {
                "severity_rating": analysis.severity_rating,
                "attack_type": cut.raw(shown.attack_type, _ID),
                "analyzed_by": cut.raw(shown.analyzed_by, _ID),
                "degraded": analysis.degraded,
                "model_overruled": overruled,
                "model_written": shown.model_written,
                "security_analysis": cut.raw(shown.security_analysis, _ANALYSIS),
                "follow_up_suggestion": cut.raw(shown.follow_up_suggestion, _FOLLOW_UP),
            },
        }
        return "\n".join(lines), document

    fifo = is_fifo(topic_arn)
    return Notification(
        topic_arn=topic_arn,
        subject=subject,
        message=_render(build),
        attributes=sanitize_attributes(
            {
                "event_key": incident.id,
                "incident_id": incident.id,
                "milestone": milestone.kind,
                "severity": str(severity),
                "workflow": "incident",
                "action": "escalate",
                "source_ip": incident.source,
            }
        ),
        dedup_id=dedup_id("incident", incident.id, milestone.id) if fifo else None,
        group_id=group_id(incident.source, incident.id) if fifo else None,
    )
