"""The ``chat`` channel: incident milestones as cards in Slack or Microsoft Teams, through
Amazon Q Developer in chat applications (formerly AWS Chatbot).

Amazon Q Developer renders an SNS message in a chat channel only when it follows its
custom-notification schema (``version`` 1.0, ``source`` custom, ``content``,
``metadata``); every milestone of one incident carries the incident id as its
``threadId``, so they land in one thread. The schema this module writes, with our
limits, is ``docs/schemas/chat-notification.json``.

Everything an attacker wrote (source, URIs, rule names of custom rules, a model's text
about them) is cleaned and neutralized for chat markdown: shown in code spans or as
plain text, never able to mention, link or format (docs/architecture.md, "Untrusted
text").
"""

from __future__ import annotations

import json
import re
from typing import Any

from secops_core.contract import Analysis, WafEvent
from worker.incidents import IncidentRecord, Milestone
from worker.notify.render import Notification, shown_analysis
from worker.notify.sanitize import (
    ascii_token,
    chat_code,
    chat_prose,
    dedup_id,
    group_id,
    is_fifo,
    sanitize_attributes,
    sanitize_subject,
)
from worker.notify.sns import TopicChannel

# Our limits, inside what the schema allows (docs/schemas/chat-notification.json): a
# card a person reads on a phone, not a report.
TITLE_MAX_CHARS = 250
DESCRIPTION_MAX_CHARS = 4000
SUMMARY_MAX_CHARS = 250
MAX_NEXT_STEPS = 5
NEXT_STEP_MAX_CHARS = 300
MAX_KEYWORDS = 10
KEYWORD_MAX_CHARS = 50
MAX_RELATED_RESOURCES = 10
MAX_CONTEXT_ENTRIES = 10
CONTEXT_VALUE_MAX_CHARS = 1024
# The whole message; SNS takes 256 KiB, the card needs far less.
MAX_MESSAGE_BYTES = 32 * 1024
# Custom actions attach buttons to notifications by this type.
EVENT_TYPE = "SecOpsIncident"

# Only a web ACL's ARN is named as a related resource, and only one that looks like one.
_WEB_ACL_ARN = re.compile(r"arn:aws[a-z-]*:wafv2:[a-z0-9-]+:\d{12}:[A-Za-z0-9/_.:-]{1,1900}")
_VALUE = 80  # one untrusted value in the description (a URI, a rule name)
_ANALYSIS = 600  # the analysis excerpt
_TOP = 3  # entries of each count map shown
_HEADLINES = {
    "opened": ":rotating_light: New incident",
    "growth": ":chart_with_upwards_trend: Incident growing",
    "severity_rise": ":arrow_double_up: Incident severity rose",
    "new_class": ":heavy_plus_sign: New attack class in incident",
    "reached_app": ":warning: Request reached the application",
    "resolved": ":white_check_mark: Incident resolved",
}


def _top(counts: Any, limit: int = _TOP) -> str:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{chat_code(name, _VALUE)} ({count})" for name, count in ranked[:limit]) or "-"


def _description(
    incident: IncidentRecord, milestone: Milestone, event: WafEvent | None, analysis: Analysis | None
) -> str:
    lines = [
        f"*What changed:* {chat_prose(milestone.summary, 200)}",
        f"*Incident:* {chat_code(incident.id, 128)} ({incident.status})",
        f"*Source:* {chat_code(incident.source, 64)}   *Class:* {chat_code(incident.attack_class, 64)}"
        f"   *Severity:* {incident.max_severity}",
        f"*Events:* {incident.count} ({incident.reached_app} reached the application)",
        f"*First seen:* {incident.first_seen:%Y-%m-%d %H:%M:%S} UTC   "
        f"*Last seen:* {incident.last_seen:%Y-%m-%d %H:%M:%S} UTC",
        f"*URIs:* {_top(incident.uri_templates)}",
        f"*Rules:* {_top(incident.rules)}",
        f"*Countries:* {_top(incident.countries)}",
    ]
    if incident.target:
        lines.insert(3, f"*Target:* {chat_code(incident.target, _VALUE)}")
    if event is not None:
        request = f"{event.http_method or ''} {event.host or ''}{event.uri}".strip()
        lines.append(f"*Latest request:* {chat_code(request, 160)} ({chat_code(event.action, 16)})")
    if event is not None and analysis is not None:
        shown = shown_analysis(event, analysis)
        author = chat_prose(shown.analyzed_by, 64)
        label = f"model-written by {author}, untrusted" if shown.model_written else f"by {author}"
        lines.append(f"*Analysis* ({label}): {chat_prose(shown.security_analysis, _ANALYSIS)}")
    return "\n".join(lines)[:DESCRIPTION_MAX_CHARS]


def _next_steps(incident: IncidentRecord, milestone: Milestone) -> list[str]:
    steps = [f"Review it: `secops incidents show {ascii_token(incident.id, 128)}`"]
    if milestone.kind == "resolved":
        return steps
    if incident.reached_app:
        steps.append(
            f"Requests reached the application: check its logs for {chat_code(incident.source, 64)} "
            "and consider a WAF block rule"
        )
    if incident.status == "open":
        steps.append(f"Acknowledge it: `secops incidents ack {ascii_token(incident.id, 128)} --note ...`")
    resolve = f"secops incidents resolve {ascii_token(incident.id, 128)}"
    steps.append(f"Resolve it when contained: `{resolve}`")
    # The operator's word for expected traffic: a suppression scoped to these events.
    steps.append(f"If it is your own traffic: `{resolve} --false-positive`")
    return [step[:NEXT_STEP_MAX_CHARS] for step in steps[:MAX_NEXT_STEPS]]


def _keywords(incident: IncidentRecord, milestone: Milestone) -> list[str]:
    words = [
        "secops",
        f"severity-{incident.max_severity}",
        incident.attack_class,
        milestone.kind,
        incident.status,
    ]
    return [ascii_token(word, KEYWORD_MAX_CHARS) for word in dict.fromkeys(words)][:MAX_KEYWORDS]


def chat_message(
    incident: IncidentRecord,
    milestone: Milestone,
    *,
    event: WafEvent | None = None,
    analysis: Analysis | None = None,
) -> dict[str, Any]:
    """The custom notification for one milestone (see ``docs/schemas/chat-notification.json``)."""
    headline = _HEADLINES.get(milestone.kind, ":rotating_light: Incident update")
    title = (
        f"{headline}: severity {incident.max_severity}, {chat_prose(incident.attack_class, 40)} "
        f"from {chat_prose(incident.source, 45)} ({incident.count} events)"
    )[:TITLE_MAX_CHARS]
    summary = sanitize_subject(
        f"SecOps incident {milestone.kind}: severity {incident.max_severity} "
        f"{ascii_token(incident.attack_class, 40)} from {ascii_token(incident.source, 45)} "
        f"({incident.count} events)"
    )[:SUMMARY_MAX_CHARS]
    resources = []
    if event is not None and event.web_acl and _WEB_ACL_ARN.fullmatch(event.web_acl):
        resources.append(event.web_acl)
    context = {
        "incidentId": incident.id,
        "milestone": milestone.id,
        "severity": str(incident.max_severity),
        "source": incident.source,
        "attackClass": incident.attack_class,
        "events": str(incident.count),
        "status": incident.status,
    }
    return {
        "version": "1.0",
        "source": "custom",
        "id": dedup_id("incident", incident.id, milestone.id),
        "content": {
            "textType": "client-markdown",
            "title": title,
            "description": _description(incident, milestone, event, analysis),
            "nextSteps": _next_steps(incident, milestone),
            "keywords": _keywords(incident, milestone),
        },
        "metadata": {
            "threadId": ascii_token(incident.id, 128),
            "summary": summary,
            "eventType": EVENT_TYPE,
            "relatedResources": resources[:MAX_RELATED_RESOURCES],
            "additionalContext": {
                key: ascii_token(value, CONTEXT_VALUE_MAX_CHARS)
                for key, value in list(context.items())[:MAX_CONTEXT_ENTRIES]
            },
        },
    }


def chat_notification(
    topic_arn: str,
    incident: IncidentRecord,
    milestone: Milestone,
    *,
    event: WafEvent | None = None,
    analysis: Analysis | None = None,
) -> Notification:
    """The SNS message carrying :func:`chat_message`, ASCII-only JSON under MAX_MESSAGE_BYTES."""
    message = chat_message(incident, milestone, event=event, analysis=analysis)
    body = json.dumps(message, ensure_ascii=True, separators=(",", ":"))
    if len(body) > MAX_MESSAGE_BYTES:
        # Every field is bounded, so this cannot happen; if a limit above is raised
        # carelessly, the analysis-heavy description goes first.
        message["content"]["description"] = message["content"]["description"][:1000]
        body = json.dumps(message, ensure_ascii=True, separators=(",", ":"))
    fifo = is_fifo(topic_arn)
    return Notification(
        topic_arn=topic_arn,
        subject=message["metadata"]["summary"],
        message=body,
        attributes=sanitize_attributes(
            {"incident_id": incident.id, "milestone": milestone.kind, "severity": str(incident.max_severity)}
        ),
        dedup_id=dedup_id("incident", "chat", incident.id, milestone.id) if fifo else None,
        group_id=group_id(incident.source, incident.id) if fifo else None,
    )


class ChatChannel(TopicChannel):
    """Publishes each milestone as a custom notification to the chat topic."""

    channel = "chat"

    def render(
        self,
        incident: IncidentRecord,
        milestone: Milestone,
        *,
        event: WafEvent | None,
        analysis: Analysis | None,
    ) -> Notification:
        return chat_notification(self.topic_arn, incident, milestone, event=event, analysis=analysis)
