"""`secops setup --log-bucket` and `secops backfill`, against moto's S3, SQS and DynamoDB over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from secops_core.ingest.s3_logs import keep_record
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from worker.cli.app import main
from worker.ops.log_samples import gzip_members, gzip_ndjson, log_key, waf_log_records
from worker.platform.resources import LOG_NOTIFICATION_ID, setup_resources

pytestmark = pytest.mark.usefixtures("aws_endpoint")

ACL_PREFIX = "AWSLogs/000000000000/WAFLogs/us-east-1/shop-prod/"
DAY = datetime(2026, 11, 29, tzinfo=UTC)


@pytest.fixture
def env(unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    settings = fast_settings(unique, tmp_path, log_filter="matched")
    for name in ("queue_name", "dlq_name", "table_name", "critical_topic_name", "monitoring_topic_name"):
        monkeypatch.setenv(f"SECOPS_{name.upper()}", getattr(settings, name))
    monkeypatch.setenv("SECOPS_LOG_FILTER", "matched")
    made = make_env(settings)
    made.clients.s3.create_bucket(Bucket=f"aws-waf-logs-{unique}")
    return made


def bucket(env: Env) -> str:
    return f"aws-waf-logs-{env.settings.queue_name.removeprefix('q-')}"


def test_log_bucket_notifies_the_queue_and_the_worker_reads_the_file(env: Env) -> None:
    # GIVEN setup run twice with the log bucket
    for _ in range(2):
        _, report = setup_resources(
            env.settings,
            sqs=env.clients.sqs,
            sns=env.clients.sns,
            store=env.store,
            s3=env.clients.s3,
            log_bucket=bucket(env),
        )
    assert report[f"s3://{bucket(env)}"] == "notifies the queue"
    # THEN the bucket has one notification of ours, for new objects under AWSLogs/
    config = env.clients.s3.get_bucket_notification_configuration(Bucket=bucket(env))
    ours = [q for q in config["QueueConfigurations"] if q["Id"] == LOG_NOTIFICATION_ID]
    assert len(ours) == 1 and ours[0]["Events"] == ["s3:ObjectCreated:*"]
    # AND the queue lets S3 send for this bucket and this account only
    policy = json.loads(
        env.clients.sqs.get_queue_attributes(QueueUrl=env.resources.queue_url, AttributeNames=["Policy"])[
            "Attributes"
        ]["Policy"]
    )
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{bucket(env)}"
    assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]

    # WHEN WAF writes a log file and the worker drains the queue
    records = list(waf_log_records(50, matched_ratio=0.1, start=DAY))
    key = log_key("000000000000", "us-east-1", "shop-prod", DAY, "f.log.gz")
    etag = env.clients.s3.put_object(Bucket=bucket(env), Key=key, Body=gzip_ndjson(records))["ETag"].strip(
        '"'
    )
    env.drain()
    # THEN S3's own notification drove the read to the end
    done = env.store.get_object(bucket(env), key, etag)
    assert done is not None and done.complete and done.kept == 5


def put_hour(env: Env, hour: int, seed: int) -> int:
    moment = DAY + timedelta(hours=hour, minutes=5)
    records = list(waf_log_records(30, matched_ratio=0.1, start=moment, seed=seed))
    key = log_key("000000000000", "us-east-1", "shop-prod", moment, f"h{hour}.log.gz")
    env.clients.s3.put_object(Bucket=bucket(env), Key=key, Body=gzip_ndjson(records))
    return sum(keep_record(r, "matched") for r in records)


def test_backfill_reads_only_the_range_and_a_rerun_skips_what_is_complete(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN log files in three hours of a day
    kept = [put_hour(env, hour, seed) for hour, seed in ((1, 1), (2, 2), (5, 3))]
    uri = f"s3://{bucket(env)}/{ACL_PREFIX}"
    window = ["--since", "2026-11-29T01:00", "--until", "2026-11-29T03:00"]
    # WHEN a dry run looks at hours 1-3
    assert main(["backfill", uri, *window, "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    # THEN it lists the two files in range and reads nothing
    assert dry["to_read"]["objects"] == 2 and all("/2026/11/29/0" in k for k in dry["to_read"]["keys"])
    # WHEN the backfill runs, twice
    assert main(["backfill", uri, *window]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["backfill", uri, *window]) == 0
    second = json.loads(capsys.readouterr().out)
    # THEN the first read both files and sent their kept records, the second only skipped
    now = first["read_now"]
    assert (now["objects"], now["kept"], now["sent"], first["failed"]["objects"]) == (
        2,
        kept[0] + kept[1],
        kept[0] + kept[1],
        0,
    )
    assert (second["read_now"]["objects"], second["complete"]["objects"], second["read_now"]["sent"]) == (
        0,
        2,
        0,
    )
    # AND the kept records are on the events queue as events
    assert env.queue_counts(env.resources.queue_url)[0] == kept[0] + kept[1]


@pytest.mark.timeout(300)
def test_backfill_reads_a_multi_member_gzip_to_the_end(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a Firehose-style object of 3 gzip members, each inflating past 1 MB, then another file
    moment = DAY + timedelta(hours=4, minutes=5)
    records = list(waf_log_records(4500, matched_ratio=0.01, start=moment, seed=9))
    key = log_key("000000000000", "us-east-1", "shop-prod", moment, "firehose-members.gz")
    env.clients.s3.put_object(Bucket=bucket(env), Key=key, Body=gzip_members(records, per_member=1500))
    after = put_hour(env, 6, 4)
    # WHEN the backfill runs over the prefix
    assert main(["backfill", f"s3://{bucket(env)}/{ACL_PREFIX}"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # THEN it read both files to the end and sent every kept record of every member
    kept = sum(keep_record(r, "matched") for r in records)
    now = summary["read_now"]
    assert (now["objects"], now["sent"], summary["failed"]["objects"]) == (2, kept + after, 0)


def test_backfill_refuses_a_bucket_outside_the_allow_list(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the default SECOPS_LOG_BUCKETS (aws-waf-logs-*) WHEN asked to read another bucket
    # THEN it refuses in one line, before listing anything
    assert main(["backfill", "s3://someone-elses-bucket/AWSLogs/"]) == 2
    err = capsys.readouterr().err
    assert "SECOPS_LOG_BUCKETS" in err and len(err.strip().splitlines()) == 1


def test_backfill_refuses_what_is_not_an_s3_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backfill", "/tmp/logs"]) == 2
    assert "s3://" in capsys.readouterr().err


def test_the_demo_log_file_is_read_through_its_notification(env: Env) -> None:
    # GIVEN the demo's log file written to S3 (the bucket notifies the queue)
    from worker.embedded.logfile import DEMO_RECORDS, log_file_summary, put_demo_log_file

    log_file = put_demo_log_file(env.clients, env.resources.queue_url)
    # WHEN the worker drains the queue with the demo's (the default) filter
    env.settings = env.settings.model_copy(update={"log_filter": "relevant"})
    env.drain()
    # THEN the summary counts the file and names what each kept record became
    summary = log_file_summary(env.store, log_file)
    assert summary["complete"] and summary["read"] == DEMO_RECORDS
    assert summary["kept"] == len(log_file.kept_keys) > 0
    assert summary["kept"] + summary["counted"] + summary["skipped"] == DEMO_RECORDS
    assert sum(summary["outcome"].values()) == summary["kept"]
