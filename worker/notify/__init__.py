"""Notifications behind the ``Notifier`` port: sanitize untrusted text, render, publish.

``sanitize`` makes attacker-written text safe for SNS, ``render`` turns the pipeline's
facts into a subject and body, ``sns`` publishes them. A new channel (chat, Security
Hub, EventBridge) is a module beside ``sns`` that renders from the same facts.
"""

from worker.notify.render import (
    JSON_SEPARATOR,
    MAX_BODY_BYTES,
    Notification,
    escalation_notification,
    incident_notification,
    pattern_notification,
)
from worker.notify.sanitize import SUBJECT_FALLBACK, SUBJECT_MAX_CHARS, sanitize_subject

__all__ = [
    "JSON_SEPARATOR",
    "MAX_BODY_BYTES",
    "SUBJECT_FALLBACK",
    "SUBJECT_MAX_CHARS",
    "Notification",
    "escalation_notification",
    "incident_notification",
    "pattern_notification",
    "sanitize_subject",
]
