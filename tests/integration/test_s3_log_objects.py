"""WAF log files from S3 through the events queue, against moto's S3, SQS and DynamoDB over HTTP.

One test per documented notification shape and file shape: each puts a real object in
S3, sends the notification to the events queue, drains a real worker, and reads back
the events the kept records became and the object's checkpoint.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from secops_core.ingest.normalize import normalize_event
from secops_core.ingest.s3_logs import keep_record
from secops_core.ingest.s3_notifications import S3ObjectRef
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from tests.fixtures.worker_process import cli_env, run_cli
from worker.consumers.s3_objects import LogObjectHandler
from worker.errors import AlreadyInProgress
from worker.ops.log_samples import gzip_members, gzip_ndjson, log_key, ndjson, waf_log_records
from worker.store import rejection_key

pytestmark = pytest.mark.usefixtures("aws_endpoint")

START = datetime(2026, 11, 30, 10, 5, tzinfo=UTC)


@pytest.fixture
def env(unique: str, tmp_path: Path) -> Iterator[Env]:
    # `matched`: these tests are about shapes; tests/integration/test_s3_relevance.py is
    # about the default filter, which counts what cannot page.
    made = make_env(fast_settings(unique, tmp_path, log_checkpoint_s=0.05, log_filter="matched"))
    made.clients.s3.create_bucket(Bucket=f"aws-waf-logs-{unique}")
    yield made


def bucket(env: Env) -> str:
    return f"aws-waf-logs-{env.settings.queue_name.removeprefix('q-')}"


def sample(count: int = 40, ratio: float = 0.1, seed: int = 1) -> list[dict[str, Any]]:
    return list(waf_log_records(count, matched_ratio=ratio, start=START, seed=seed))


def kept_keys(records: list[dict[str, Any]]) -> set[str]:
    return {normalize_event(r).event_key for r in records if keep_record(r, "matched")}


def put(env: Env, data: bytes, name: str = "file.log.gz") -> tuple[str, str]:
    key = log_key("000000000000", "us-east-1", "shop-prod", START, name)
    etag = env.clients.s3.put_object(Bucket=bucket(env), Key=key, Body=data)["ETag"].strip('"')
    return key, etag


def s3_notification(env: Env, key: str, etag: str, event: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": event,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket(env), "arn": f"arn:aws:s3:::{bucket(env)}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": 1, "eTag": etag, "sequencer": "0A"},
                },
            }
        ]
    }


def checkpoint(env: Env, key: str, etag: str) -> Any:
    found = env.store.get_object(bucket(env), key, etag)
    assert found is not None
    return found


def assert_events(env: Env, keys: set[str]) -> None:
    records = env.store.get_many(sorted(keys))
    assert set(records) == keys
    assert all(r.status in {"closed", "monitoring", "escalated"} for r in records.values())


def assert_queues_empty(env: Env) -> None:
    assert env.queue_counts(env.resources.queue_url) == (0, 0)
    assert env.resources.dlq_url is not None
    assert env.queue_counts(env.resources.dlq_url) == (0, 0)


# ---- notification shapes ------------------------------------------------------------------


def test_direct_s3_notification_of_a_gzip_ndjson_file(env: Env) -> None:
    # GIVEN a gzip NDJSON log file in S3 (10 % attacks) and S3's notification of it
    records = sample()
    key, etag = put(env, gzip_ndjson(records))
    env.send([s3_notification(env, key, etag)])
    # WHEN a worker drains the queue
    worker = env.drain()
    # THEN each kept record became an event with its usual key, the rest were counted
    assert_events(env, kept_keys(records))
    done = checkpoint(env, key, etag)
    assert done.complete and (done.read, done.kept, done.skipped, done.bad) == (40, 4, 36, 0)
    # AND the notification and the fanned-out records were all acknowledged
    assert worker.consumer.stats.outcomes.get("done", 0) >= 5
    assert_queues_empty(env)


def test_key_with_spaces_and_plus_is_decoded(env: Env) -> None:
    # GIVEN an object whose name has a space and a plus, URL-encoded in the notification
    records = sample(20, ratio=0.25)
    key, etag = put(env, gzip_ndjson(records), name="a file+1.log.gz")
    body = s3_notification(env, key, etag)
    assert "+" in body["Records"][0]["s3"]["object"]["key"]
    env.send([body])
    # WHEN drained THEN the object was found and read
    env.drain()
    assert checkpoint(env, key, etag).complete
    assert_events(env, kept_keys(records))


def test_s3_test_event_is_acknowledged_and_ignored(env: Env) -> None:
    # GIVEN the test event S3 sends when the notification is configured
    env.send(
        [{"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-30T10:00:00Z", "Bucket": "b"}]
    )
    # WHEN drained THEN it is acknowledged, nothing rejected
    worker = env.drain()
    assert worker.consumer.stats.outcomes == {"done": 1}
    assert_queues_empty(env)


def test_sns_wrapped_notification(env: Env) -> None:
    # GIVEN the S3 notification delivered through an SNS topic (raw delivery off)
    records = sample(seed=2)
    key, etag = put(env, gzip_ndjson(records))
    envelope = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:waf-logs",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(s3_notification(env, key, etag)),
    }
    env.send([envelope])
    # WHEN drained THEN the file was read as if S3 had notified the queue directly
    env.drain()
    assert checkpoint(env, key, etag).complete
    assert_events(env, kept_keys(records))


def test_eventbridge_object_created(env: Env) -> None:
    # GIVEN EventBridge's Object Created event for the file
    records = sample(seed=3)
    key, etag = put(env, gzip_ndjson(records))
    event = {
        "version": "0",
        "id": "e-1",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "000000000000",
        "region": "us-east-1",
        "detail": {
            "version": "0",
            "bucket": {"name": bucket(env)},
            "object": {"key": quote_plus(key, safe="/"), "size": 1, "etag": etag},
            "reason": "PutObject",
        },
    }
    env.send([event])
    # WHEN drained THEN the file was read
    env.drain()
    assert checkpoint(env, key, etag).complete
    assert_events(env, kept_keys(records))


# ---- file shapes ----------------------------------------------------------------------------


def test_plain_ndjson_file(env: Env) -> None:
    records = sample(seed=4)
    key, etag = put(env, ndjson(records), name="file.log")
    env.send([s3_notification(env, key, etag)])
    env.drain()
    assert checkpoint(env, key, etag).kept == 4
    assert_events(env, kept_keys(records))


def test_firehose_concatenated_records(env: Env) -> None:
    # GIVEN Firehose's output without a newline processor: `}{` between records
    records = sample(seed=5)
    data = gzip.compress("".join(json.dumps(r, separators=(",", ":")) for r in records).encode())
    key, etag = put(env, data, name="firehose-1")
    env.send([s3_notification(env, key, etag)])
    # WHEN drained THEN every record was framed and the kept ones became events
    env.drain()
    done = checkpoint(env, key, etag)
    assert (done.read, done.bad) == (40, 0)
    assert_events(env, kept_keys(records))


@pytest.mark.timeout(300)
def test_multi_member_gzip_through_secops_run(env: Env, aws_endpoint: str) -> None:
    # GIVEN a Firehose-style object: 3 gzip members of 1,500 records, each inflating far
    # past the decompressor's 256 KiB output per call (the file that used to spin forever)
    records = sample(4500, ratio=0.01, seed=7)
    key, etag = put(env, gzip_members(records, per_member=1500), name="firehose-members.gz")
    env.send([s3_notification(env, key, etag)])
    # WHEN `secops run` drains the queue as ECS runs it
    done_run = run_cli(
        "run",
        env=cli_env(
            aws_endpoint,
            env.settings,
            exit_when_idle_polls=2,
            wait_time_s=1,
            log_format="json",
            log_filter="matched",
        ),
        timeout=240,
    )
    # THEN it ends, the checkpoint counts every record once and each kept one is an event
    assert done_run.returncode == 0, done_run.stderr[-2000:]
    done = checkpoint(env, key, etag)
    assert done.complete and (done.read, done.kept, done.bad) == (4500, 45, 0)
    assert_events(env, kept_keys(records))
    assert_queues_empty(env)


def test_cloudwatch_logs_envelopes(env: Env) -> None:
    # GIVEN CloudWatch Logs → Firehose → S3: gzip members of DATA_MESSAGE envelopes and a CONTROL_MESSAGE
    records = sample(seed=6)

    def envelope(kind: str, messages: list[str]) -> bytes:
        events = [{"id": str(i), "timestamp": 1, "message": m} for i, m in enumerate(messages)]
        return json.dumps(
            {"messageType": kind, "owner": "0", "logGroup": "aws-waf-logs-x", "logEvents": events}
        ).encode()

    messages = [json.dumps(r, separators=(",", ":")) for r in records]
    data = gzip.compress(
        envelope("CONTROL_MESSAGE", ["CWL CONTROL MESSAGE: Checking health of destination"])
    ) + gzip.compress(envelope("DATA_MESSAGE", messages[:25]) + envelope("DATA_MESSAGE", messages[25:]))
    key, etag = put(env, data, name="cwl-1")
    env.send([s3_notification(env, key, etag)])
    # WHEN drained THEN each log event is a record; the control message none
    env.drain()
    done = checkpoint(env, key, etag)
    assert (done.read, done.kept, done.bad) == (40, 4, 0)
    assert_events(env, kept_keys(records))


# ---- bad objects ------------------------------------------------------------------------------


def test_bad_lines_never_stop_the_file(env: Env) -> None:
    # GIVEN a file with a non-JSON line and a JSON line that is no WAF record among good ones
    records = sample(seed=7)
    lines = ndjson(records).splitlines()
    lines.insert(3, b"this is not json")
    lines.insert(10, b'{"id": "not-a-waf-record"}')
    key, etag = put(env, gzip.compress(b"\n".join(lines) + b"\n"))
    env.send([s3_notification(env, key, etag)])
    # WHEN drained
    env.drain()
    # THEN the good records went on, and the bad lines are in the checkpoint by number
    done = checkpoint(env, key, etag)
    assert done.complete and done.kept == 4
    assert [(b.line, b.reason) for b in done.bad_lines] == [(4, "not_json"), (11, "not_a_waf_record")]
    assert_events(env, kept_keys(records))
    assert_queues_empty(env)


def test_truncated_gzip_keeps_the_records_before_the_cut(env: Env) -> None:
    records = sample(400, ratio=0.05, seed=8)
    data = gzip_ndjson(records)
    key, etag = put(env, data[: len(data) * 3 // 4])
    env.send([s3_notification(env, key, etag)])
    env.drain()
    done = checkpoint(env, key, etag)
    assert done.complete and done.bad == 1 and done.bad_lines[0].reason == "truncated_gzip"
    assert 0 < done.kept < 20


def test_a_file_that_is_not_gzip_is_read_as_text(env: Env) -> None:
    # GIVEN garbage bytes under a .gz name
    key, etag = put(env, b"\x00\x01PK\x03\x04 binary garbage\n\xff\xfe\xfd\n")
    env.send([s3_notification(env, key, etag)])
    env.drain()
    # THEN its lines are bad lines, and the message is done, not a crash loop
    done = checkpoint(env, key, etag)
    assert done.complete and done.bad == 2 and done.kept == 0
    assert_queues_empty(env)


def test_deleted_object_is_rejected_into_the_dlq_with_its_reason(env: Env) -> None:
    # GIVEN a notification for an object deleted before it was read
    key, etag = put(env, gzip_ndjson(sample()))
    env.clients.s3.delete_object(Bucket=bucket(env), Key=key)
    body = json.dumps(s3_notification(env, key, etag))
    env.send([body])
    # WHEN drained (each receive rejects it again until the redrive moves it)
    worker = env.drain()
    # THEN it is in the DLQ and the store says why, under the body's rejection key
    assert worker.consumer.stats.outcomes.get("rejected", 0) >= 1
    record = env.store.get(rejection_key(body))
    assert record is not None and record.status == "rejected"
    assert record.rejection_code == "s3_object_missing"
    assert env.resources.dlq_url is not None
    assert env.queue_counts(env.resources.dlq_url)[0] == 1


def test_an_overwritten_object_is_not_read_under_the_old_etag(env: Env) -> None:
    # GIVEN a notification whose object has since been replaced (the ETag differs)
    key, etag = put(env, gzip_ndjson(sample(seed=9)))
    put(env, gzip_ndjson(sample(seed=10)))
    env.send([s3_notification(env, key, etag)])
    # WHEN drained THEN it is acknowledged: the new content has its own notification
    env.drain()
    done = checkpoint(env, key, etag)
    assert done.complete and done.read == 0
    assert_queues_empty(env)


# ---- checkpoints: stop, crash and resume ----------------------------------------------------------


def handler(env: Env, *, owner: str, stopping: Any = lambda: False) -> LogObjectHandler:
    return LogObjectHandler(
        s3=env.clients.s3,
        sqs=env.clients.sqs,
        queue_url=env.resources.queue_url,
        checkpoints=env.store,
        events=env.store,
        owner=owner,
        lease_s=30,
        checkpoint_every_s=0.0,
        stopping=stopping,
    )


def queued_bodies(env: Env) -> list[str]:
    bodies = []
    while True:
        batch = env.clients.sqs.receive_message(
            QueueUrl=env.resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return bodies
        bodies += [m["Body"] for m in batch]
        env.clients.sqs.delete_message_batch(
            QueueUrl=env.resources.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def test_a_stop_mid_file_resumes_at_the_checkpoint_without_loss_or_resend(env: Env) -> None:
    # GIVEN a long file (3000 records, 2 % kept) and a reader asked to stop after two checkpoints
    records = sample(3000, ratio=0.02, seed=11)
    key, etag = put(env, gzip_ndjson(records))
    ref = S3ObjectRef(bucket(env), key, etag=etag)
    calls = iter(range(1000))
    first = handler(env, owner="a", stopping=lambda: next(calls) >= 2)
    # WHEN it reads, stops, and another reader picks the object up
    stopped = first.read_object(ref)
    assert stopped.stopped and 0 < stopped.checkpoint.position < 3000
    resumed = handler(env, owner="b").read_object(ref)
    # THEN the object is complete, counted once, and every kept record was sent exactly once
    done = resumed.checkpoint
    assert done.complete and (done.read, done.kept) == (3000, 60) and done.attempts == 2
    bodies = queued_bodies(env)
    assert len(bodies) == len(set(bodies)) == 60
    assert {normalize_event(json.loads(b)).event_key for b in bodies} == kept_keys(records)


def test_a_crash_mid_file_resumes_after_the_lease(env: Env) -> None:
    # GIVEN a reader that died after its first checkpoint (its lease still held)
    records = sample(3000, ratio=0.02, seed=12)
    key, etag = put(env, gzip_ndjson(records))
    ref = S3ObjectRef(bucket(env), key, etag=etag)
    claimed = env.store.claim_object(bucket(env), key, etag, owner="dead", lease_s=1)
    env.store.save_object(claimed.advanced(1500, claimed.counts()), owner="dead", lease_s=-1)
    # WHEN another reader takes the expired lease over
    done = handler(env, owner="b").read_object(ref).checkpoint
    # THEN it read only the second half (the first was sent before the crash)
    assert done.complete and done.position == 3000 and done.read == 1500
    assert len(queued_bodies(env)) == sum(keep_record(r, "matched") for r in records[1500:])


def test_a_live_lease_sends_the_notification_back_later(env: Env) -> None:
    key, etag = put(env, gzip_ndjson(sample()))
    env.store.claim_object(bucket(env), key, etag, owner="other", lease_s=60)
    reader = handler(env, owner="me")
    from secops_core.ingest.s3_notifications import parse_s3_notification

    notification = parse_s3_notification(s3_notification(env, key, etag))
    assert notification is not None
    outcome = reader.handle(notification, "{}", "m-1")
    assert outcome.kind == "in_progress" and (outcome.delay_s or 0) > 30


def test_a_complete_object_is_never_read_again(env: Env) -> None:
    records = sample(seed=13)
    key, etag = put(env, gzip_ndjson(records))
    ref = S3ObjectRef(bucket(env), key, etag=etag)
    first = handler(env, owner="a").read_object(ref)
    again = handler(env, owner="b").read_object(ref)
    assert first.sent == 4 and again.skipped and again.sent == 0


# ---- hostile objects (issue 19) -------------------------------------------------------------


class GatedBody:
    """An S3 body whose first read waits at a gate: a read held mid-object."""

    def __init__(self, body: Any, gate: threading.Event, entered: threading.Event) -> None:
        self.body, self.gate, self.entered = body, gate, entered

    def read(self, size: int = -1) -> bytes:
        self.entered.set()
        self.gate.wait(30)
        data: bytes = self.body.read(size)
        return data

    def close(self) -> None:
        self.body.close()


def test_a_second_slot_of_one_process_backs_off_from_an_object_being_read(env: Env) -> None:
    # GIVEN one process's handler reading an object on one slot, held mid-read
    key, etag = put(env, gzip_ndjson(sample(seed=21)))
    ref = S3ObjectRef(bucket(env), key, etag=etag)
    reader = handler(env, owner="one-process")
    gate, entered = threading.Event(), threading.Event()
    real_open = reader._open
    opened = iter([True])
    reader._open = lambda r: GatedBody(real_open(r), gate, entered) if next(opened, False) else real_open(r)  # type: ignore[method-assign]
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(reader.read_object(ref)))
    first.start()
    assert entered.wait(30)
    # WHEN a second slot of the same process gets another notification of the object
    # THEN it backs off instead of reading it at the same time
    with pytest.raises(AlreadyInProgress):
        reader.read_object(ref)
    gate.set()
    first.join(30)
    assert results and results[0].checkpoint.complete and results[0].sent == 4


def test_a_record_larger_than_a_message_is_a_bad_line_and_the_file_goes_on(env: Env) -> None:
    # GIVEN a file whose second kept record is 1.5 MB (SQS takes 1 MiB; before, its batch was
    # refused as too long on every attempt and no record after it was ever sent)
    records = sample(60, ratio=0.5, seed=22)
    attacks = [r for r in records if keep_record(r, "matched")]
    attacks[1]["httpRequest"]["args"] = "a" * 1_500_000
    key, etag = put(env, gzip_ndjson(records))
    env.send([s3_notification(env, key, etag)])
    # WHEN the worker drains the queue
    env.drain()
    # THEN the file is complete, the large record a bad line with its reason, every other
    # kept record an event, and nothing reached the DLQ
    done = checkpoint(env, key, etag)
    assert done.complete and [b.reason for b in done.bad_lines] == ["record_too_large_for_queue"]
    others = [r for r in attacks if r is not attacks[1]]
    assert_events(env, {normalize_event(r).event_key for r in others})
    assert_queues_empty(env)


def test_a_kept_record_shaped_like_a_notification_reads_nothing_else(env: Env) -> None:
    # GIVEN another object in the bucket, and a log line that is both an attack and an S3
    # notification naming that object
    other_key, other_etag = put(env, gzip_ndjson(sample(seed=23)), name="not-notified.log.gz")
    attack = next(r for r in sample(20, ratio=0.5, seed=24) if keep_record(r, "matched"))
    forged = {**attack, **s3_notification(env, other_key, other_etag)}
    key, etag = put(env, gzip_ndjson([forged]))
    env.send([s3_notification(env, key, etag)])
    # WHEN the worker drains the queue
    env.drain()
    # THEN the line became an event, and the object it names was never read
    assert checkpoint(env, key, etag).kept == 1
    assert_events(env, {normalize_event(forged).event_key})
    assert env.store.get_object(bucket(env), other_key, other_etag) is None
    assert_queues_empty(env)


def test_the_checkpoint_says_what_the_read_did(env: Env) -> None:
    # GIVEN an amplifier: one attack line 500 times, and an oversized-for-queue record
    attack = next(r for r in sample(20, ratio=0.5, seed=25) if keep_record(r, "matched"))
    key, etag = put(env, gzip_ndjson([attack] * 500))
    done = handler(env, owner="a").read_object(S3ObjectRef(bucket(env), key, etag=etag)).checkpoint
    # THEN it was sent once, the copies counted, and the stream's progress recorded
    assert (done.read, done.kept, done.duplicates) == (500, 1, 499)
    assert done.activity == "done" and done.inflated_bytes > done.compressed_bytes > 0
    assert done.read_s > 0 and done.updated_at is not None
    assert len(queued_bodies(env)) == 1
