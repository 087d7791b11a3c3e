"""S3 "object created" notifications, in every shape they reach the events queue.

S3 can tell the queue about a new log object three ways, and an SNS topic in between
wraps any of them (docs/architecture.md, "Consumers"):

1. an S3 event notification sent to SQS directly: ``{"Records": [{"eventSource": "aws:s3",
   "eventName": "ObjectCreated:Put", "s3": {"bucket": {...}, "object": {...}}}]}``;
2. the ``s3:TestEvent`` S3 sends once when a notification is configured (nothing to read);
3. an EventBridge event: ``{"source": "aws.s3", "detail-type": "Object Created",
   "detail": {"bucket": {"name": ...}, "object": {"key": ..., "etag": ...}}}``;
4. any of those wrapped in an SNS envelope (raw message delivery off; an EventBridge
   rule whose target is a topic): ``{"Type": "Notification", "Message": "<the JSON as a
   string>"}``.

Object keys arrive URL-encoded with ``+`` for spaces (``a+b%2Bc`` is ``a b+c``). Pure:
this module reads JSON that is already parsed and touches no network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

NotificationVia = Literal["s3", "sns", "eventbridge"]

# Substrings one of the shapes above must contain; a queue message without any of them is
# an event, and is not parsed twice on its way to the event processor.
_MARKERS = ('"aws:s3"', '"s3:TestEvent"', '"aws.s3"', '"Notification"')


@dataclass(frozen=True)
class S3ObjectRef:
    """One object a notification names; ``etag`` or ``version_id`` pins the content read."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None

    @property
    def version(self) -> str:
        """What names this content of the object: the version id, else the ETag, else ``-``."""
        return self.version_id or self.etag or "-"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class S3Notification:
    """The objects created (none for a test event or another kind of S3 event)."""

    via: NotificationVia
    objects: tuple[S3ObjectRef, ...] = ()
    test_event: bool = False
    # S3 events that are not ObjectCreated:* (a removal, a restore ...): acknowledged, not read.
    ignored: int = 0


def may_be_s3_notification(body: str) -> bool:
    """A cheap look at a raw body: False means it is certainly not an S3 notification."""
    return any(marker in body for marker in _MARKERS)


def parse_s3_notification(payload: Any) -> S3Notification | None:
    """The notification ``payload`` is, or None when it is no S3 notification at all.

    A payload that claims to be one (``eventSource: aws:s3``) but lacks a bucket or a key
    raises :class:`ValueError`: it is a bad message, not an event.
    """
    if not isinstance(payload, Mapping):
        return None
    if payload.get("Type") == "Notification" and isinstance(payload.get("Message"), str):
        try:
            inner = json.loads(payload["Message"])
        except ValueError:
            return None
        found = _eventbridge(inner) if _is_eventbridge(inner) else _direct(inner)
        return (
            None if found is None else S3Notification("sns", found.objects, found.test_event, found.ignored)
        )
    if _is_eventbridge(payload):
        return _eventbridge(payload)
    return _direct(payload)


def _is_eventbridge(payload: Any) -> bool:
    return isinstance(payload, Mapping) and payload.get("source") == "aws.s3" and "detail-type" in payload


def _direct(payload: Any) -> S3Notification | None:
    if not isinstance(payload, Mapping):
        return None
    if payload.get("Event") == "s3:TestEvent" and payload.get("Service") == "Amazon S3":
        return S3Notification("s3", test_event=True)
    records = payload.get("Records")
    if not isinstance(records, list) or not records:
        return None
    if not all(isinstance(r, Mapping) and r.get("eventSource") == "aws:s3" for r in records):
        return None
    objects: list[S3ObjectRef] = []
    ignored = 0
    for record in records:
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            ignored += 1
            continue
        s3 = _mapping(record.get("s3"))
        bucket = _mapping(s3.get("bucket")).get("name")
        obj = _mapping(s3.get("object"))
        objects.append(_ref(bucket, obj.get("key"), obj.get("size"), obj.get("eTag"), obj.get("versionId")))
    return S3Notification("s3", tuple(objects), ignored=ignored)


def _eventbridge(payload: Mapping[str, Any]) -> S3Notification:
    if payload.get("detail-type") != "Object Created":
        return S3Notification("eventbridge", ignored=1)
    detail = _mapping(payload.get("detail"))
    obj = _mapping(detail.get("object"))
    ref = _ref(
        _mapping(detail.get("bucket")).get("name"),
        obj.get("key"),
        obj.get("size"),
        obj.get("etag"),
        obj.get("version-id"),
    )
    return S3Notification("eventbridge", (ref,))


def _ref(bucket: Any, key: Any, size: Any, etag: Any, version_id: Any) -> S3ObjectRef:
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise ValueError("S3 notification without a bucket name or an object key")
    return S3ObjectRef(
        bucket=bucket,
        key=unquote_plus(key),
        size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        etag=str(etag).strip('"') if isinstance(etag, str) and etag else None,
        version_id=version_id
        if isinstance(version_id, str) and version_id and version_id != "null"
        else None,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
