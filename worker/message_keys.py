"""The event key of a queue message body, computed the way the processor computes it.

Operators' tools (``secops dlq inspect|replay``) look a message up in the store by
this key, so it must land on the very record the processor wrote for that body:

- a body that parses into an event: that event's key (``evt#<id>`` or
  ``evt#sha256:...``), exactly as :func:`worker.processor.parse_message` derives it;
- a body that does not parse but is an object with an ``id`` (bare or under
  ``event``): ``evt#<id>``, so rejections of one event group on one record;
- anything else: :func:`worker.store.rejection_key`, a hash of the raw body.
"""

from __future__ import annotations

import json

from agent_runtime.errors import ContractError
from agent_runtime.normalize import event_key_for
from worker.errors import PermanentError
from worker.processor import parse_message
from worker.store import rejection_key


def event_key_of_body(body: str) -> str:
    """The store key the processor uses for a message with this body. Never raises."""
    try:
        return parse_message(body).event.event_key
    except (ContractError, PermanentError):
        return _key_if_event(body) or rejection_key(body)
    except Exception:
        # A body that crashes the parser has no record of its own; an inspection must
        # still show it, under the key a rejection of it would get.
        return rejection_key(body)


def _key_if_event(body: str) -> str | None:
    """Mirrors the processor's rule for unparsable bodies that still name an ``id``."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(payload, dict) and isinstance(payload.get("event"), dict):
        payload = payload["event"]
    if isinstance(payload, dict) and isinstance(payload.get("id"), str | int):
        try:
            return event_key_for(payload)
        except ContractError:
            return None
    return None
