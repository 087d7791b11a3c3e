"""The default log filter end to end (docs/architecture.md, "Relevance"), against moto over HTTP.

A file shaped like a real web ACL's (geo labels on every record, verified crawlers, uploads
over the body limit counted, reputation and bot blocks, a scanner, an attacker): only what
can be monitored or escalated becomes a queue message and an event; what cannot page is
counted in its window, once, even when the read stops and resumes mid-file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.day_traffic import DayPlan, HourMix, day_records
from secops_core.ingest.log_filter import RelevanceFilter
from secops_core.ingest.normalize import normalize_event
from secops_core.ingest.s3_notifications import S3ObjectRef
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from worker.consumers.s3_objects import LogObjectHandler
from worker.ops.log_samples import gzip_ndjson, log_key

pytestmark = pytest.mark.usefixtures("aws_endpoint")

PLAN = DayPlan(hours=1, mix=HourMix().scaled(300), scanner_hour=0, scanner_requests=40, attacker_hour=0)


@pytest.fixture
def env(unique: str, tmp_path: Path) -> Iterator[Env]:
    made = make_env(fast_settings(unique, tmp_path, log_checkpoint_s=0.05))
    made.clients.s3.create_bucket(Bucket=f"aws-waf-logs-{unique}")
    yield made


def _bucket(env: Env) -> str:
    return f"aws-waf-logs-{env.settings.queue_name.removeprefix('q-')}"


def _records() -> tuple[list[dict[str, Any]], Counter[str], set[str]]:
    grader = RelevanceFilter()
    records = [item.record for item in day_records(PLAN, 0)]
    verdicts: Counter[str] = Counter()
    event_keys = set()
    for record in records:
        graded = grader.grade(record)
        assert graded is not None
        verdicts[graded.relevance.value] += 1
        if graded.relevance.value == "event":
            event_keys.add(normalize_event(record).event_key)
    return records, verdicts, event_keys


def _put(env: Env, records: list[dict[str, Any]]) -> tuple[str, str]:
    key = log_key("000000000000", "us-east-1", "shop-prod", PLAN.start, "hour.log.gz")
    etag = env.clients.s3.put_object(Bucket=_bucket(env), Key=key, Body=gzip_ndjson(records))["ETag"]
    return key, etag.strip('"')


def _notification(env: Env, key: str, etag: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": _bucket(env)}, "object": {"key": key, "eTag": etag, "size": 1}},
            }
        ]
    }


def _window_requests(env: Env) -> int:
    windows = env.store.window_counts(since=PLAN.start, until=PLAN.start + timedelta(minutes=59))
    return sum(w.requests for w in windows)


def test_only_what_can_page_becomes_an_event_and_the_rest_is_counted_once(env: Env) -> None:
    # GIVEN an hour of a real web ACL's log in S3 and S3's notification of it
    records, verdicts, event_keys = _records()
    key, etag = _put(env, records)
    env.send([_notification(env, key, etag)])
    # WHEN a worker drains the queue, and the notification comes again (a duplicate)
    env.drain()
    env.send([_notification(env, key, etag)])
    env.drain()
    # THEN the events are exactly the records the catalog calls events, triaged
    stored = env.store.get_many(sorted(event_keys))
    assert set(stored) == event_keys
    assert all(r.status in {"closed", "monitoring", "escalated"} for r in stored.values())
    # AND the checkpoint says what became of every record
    done = env.store.get_object(_bucket(env), key, etag)
    assert done is not None and done.complete
    assert (done.read, done.kept, done.counted, done.skipped) == (
        len(records),
        verdicts["event"],
        verdicts["counted"],
        verdicts["noise"],
    )
    # AND the counted records are in their windows, once, the duplicate notwithstanding
    assert _window_requests(env) == verdicts["counted"]


def test_a_read_stopped_mid_file_and_resumed_counts_every_record_once(env: Env) -> None:
    # GIVEN the same hour, read by a handler that stops at its first checkpoint
    records, verdicts, _ = _records()
    key, etag = _put(env, records)
    ref = S3ObjectRef(bucket=_bucket(env), key=key, etag=etag)
    stops = iter([False] * 50 + [True])

    def handler(stopping: Any) -> LogObjectHandler:
        return LogObjectHandler(
            s3=env.clients.s3,
            sqs=env.clients.sqs,
            queue_url=env.resources.queue_url,
            checkpoints=env.store,
            events=env.store,
            owner="reader",
            lease_s=30,
            keep="relevant",
            checkpoint_every_s=0.0,
            stopping=stopping,
            counts=env.store,
        )

    first = handler(lambda: next(stops, True)).read_object(ref)
    assert first.stopped and 0 < first.checkpoint.position < len(records)
    assert 0 < _window_requests(env) < verdicts["counted"]
    # WHEN another read resumes at the checkpoint and finishes
    second = handler(lambda: False).read_object(ref)
    # THEN every counted record is in its window exactly once
    assert second.checkpoint.complete and second.checkpoint.counted == verdicts["counted"]
    assert _window_requests(env) == verdicts["counted"]


def test_the_settings_name_the_default_filter_and_keep_the_old_ones(unique: str, tmp_path: Path) -> None:
    # GIVEN the worker's settings THEN `relevant` is the default and `matched`/`all` remain
    assert fast_settings(unique, tmp_path).log_filter == "relevant"
    for mode in ("matched", "blocked", "all"):
        assert fast_settings(unique, tmp_path, log_filter=mode).log_filter == mode
