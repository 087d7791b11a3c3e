"""A worker killed (SIGKILL) while it reads a log file: the next one resumes at the checkpoint.

The worker is the ``secops run`` subprocess ECS would run, against moto over HTTP. The
invariants of the chaos runs, on one file: no kept record lost, none processed twice past
its key, and the object's checkpoint ends complete with every record counted once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from secops_core.ingest.normalize import normalize_event
from secops_core.ingest.s3_logs import keep_record
from tests.fixtures.worker_harness import fast_settings, make_env
from tests.fixtures.worker_process import cli_env, start_worker, wait_for
from worker.ops.log_samples import gzip_ndjson, log_key, waf_log_records
from worker.platform.resources import connect_log_bucket
from worker.settings import SQS_MAX_BATCH

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.usefixtures("aws_endpoint")]

RECORDS = 150_000
START = datetime(2026, 11, 30, 10, 5, tzinfo=UTC)


def test_sigkill_mid_file_loses_nothing_and_sends_nothing_twice(
    aws_endpoint: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN a large log file (0.1 % attacks) whose bucket notifies the queue
    settings = fast_settings(unique, tmp_path, lease_s=10, log_filter="matched")
    env = make_env(settings)
    bucket = f"aws-waf-logs-{unique}"
    env.clients.s3.create_bucket(Bucket=bucket)
    connect_log_bucket(env.clients.s3, env.clients.sqs, bucket=bucket, queue_url=env.resources.queue_url)
    records = list(waf_log_records(RECORDS, matched_ratio=0.001, start=START))
    expected = {normalize_event(r).event_key for r in records if keep_record(r, "matched")}
    key = log_key("000000000000", "us-east-1", "shop-prod", START, "big.log.gz")
    process_env = cli_env(
        aws_endpoint,
        settings,
        log_checkpoint_s=0.05,
        log_filter="matched",
        lease_s=10,
        runtime_retry_deadline_s=5,
        wait_time_s=1,
        visibility_timeout_s=30,
        heartbeat_interval_s=5,
        exit_when_idle_polls=0,
        metrics_enabled=False,
        monitor_enabled=False,
    )
    first = start_worker(process_env, tmp_path, "first")
    try:
        etag = env.clients.s3.put_object(Bucket=bucket, Key=key, Body=gzip_ndjson(records))["ETag"].strip('"')

        # WHEN the worker is killed once its checkpoint shows a read under way
        def mid_read() -> bool:
            found = env.store.get_object(bucket, key, etag)
            return found is not None and 0 < found.position < RECORDS and not found.complete

        wait_for(mid_read, timeout=60, interval=0.02, what="a checkpoint mid-file")
    finally:
        first.kill()
    cut = env.store.get_object(bucket, key, etag)
    assert cut is not None and not cut.complete
    # AND another worker takes over after the dead one's lease
    second = start_worker(process_env, tmp_path, "second")
    try:
        done = wait_for(
            lambda: (c := env.store.get_object(bucket, key, etag)) is not None and c.complete and c,
            timeout=240,
            what="the checkpoint to complete",
        )
        wait_for(
            lambda: (
                len(env.store.get_many(sorted(expected))) == len(expected)
                and all(r.is_terminal for r in env.store.get_many(sorted(expected)).values())
            ),
            timeout=240,
            what="every kept record to reach a terminal state",
        )
    finally:
        second.kill()
    # THEN every record was counted once and every kept one became its event
    assert (done.read, done.kept, done.bad) == (RECORDS, len(expected), 0)
    assert done.attempts == 2 and cut.position <= done.position
    events = env.store.get_many(sorted(expected))
    assert set(events) == expected
    # AND the resume re-sent at most the one batch in flight at the kill (a re-sent record
    # is a second message for the same key, acknowledged as a duplicate)
    resent = {k: sorted(r.message_ids) for k, r in events.items() if len(r.message_ids) > 1}
    assert len(resent) <= SQS_MAX_BATCH, json.dumps(resent)
    assert env.resources.dlq_url is not None
    assert env.queue_counts(env.resources.dlq_url) == (0, 0)
