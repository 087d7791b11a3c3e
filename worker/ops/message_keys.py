"""The event key of a queue message body, computed the way the processor computes it.

Operators' tools (``secops dlq inspect|replay``) look a message up in the store by
this key, so it must land on the very record the processor wrote for that body:

- a body that parses into an event: that event's key (``evt#<id>`` or
  ``evt#sha256:...``), exactly as :func:`worker.pipeline.processor.parse_message` derives it;
- a body that does not parse but is an object with an ``id`` (bare or under
  ``event``): ``evt#<id>``, so rejections of one event group on one record;
- anything else: :func:`worker.store.rejection_key`, a hash of the raw body.
"""

from __future__ import annotations

from secops_core.errors import ContractError
from worker.errors import PermanentError
from worker.pipeline.processor import key_of_unparsed, parse_message
from worker.store import rejection_key


def event_key_of_body(body: str) -> str:
    """The store key the processor uses for a message with this body. Never raises."""
    try:
        return parse_message(body).event.event_key
    except (ContractError, PermanentError):
        return key_of_unparsed(body) or rejection_key(body)
    except Exception:
        # A body that crashes the parser has no record of its own; an inspection must
        # still show it, under the key a rejection of it would get.
        return rejection_key(body)
