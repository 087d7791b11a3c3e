"""`secops setup --log-bucket` on a bucket that is missing or not ours: checked first,
named in one line, nothing changed; `--create-bucket` makes it (moto over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.worker_harness import fast_settings
from tests.fixtures.worker_process import cli_env, run_cli
from worker.platform.aws import client as aws_client
from worker.platform.resources import LOG_NOTIFICATION_ID


def test_a_missing_log_bucket_is_named_and_nothing_is_changed(
    aws_endpoint: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN a fresh deployment's names and a bucket that does not exist
    settings = fast_settings(unique, tmp_path)
    missing = f"aws-waf-logs-missing-{unique}"
    env = cli_env(aws_endpoint, settings)
    # WHEN setup is asked to wire it
    result = run_cli("setup", "--log-bucket", missing, env=env)
    # THEN one line names the bucket and the way out, exit 1, no traceback
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("secops: error: the log bucket") and repr(missing) in line
    assert "--create-bucket" in line and "nothing was changed" in line
    # AND nothing was created or changed: no queue (so no policy statement), no table
    sqs = aws_client("sqs")
    assert not sqs.list_queues(QueueNamePrefix=settings.queue_name).get("QueueUrls")
    assert settings.table_name not in aws_client("dynamodb").list_tables()["TableNames"]


def test_an_existing_queue_keeps_its_policy_when_the_bucket_is_missing(
    aws_endpoint: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN a deployment set up before, with its queue policy as it was
    settings = fast_settings(unique, tmp_path)
    env = cli_env(aws_endpoint, settings)
    assert run_cli("setup", env=env).returncode == 0
    sqs = aws_client("sqs")
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    before = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # WHEN setup is asked to wire a bucket that does not exist
    result = run_cli("setup", "--log-bucket", f"nope-{unique}", env=env)
    # THEN it fails and the queue holds no statement for that bucket
    assert result.returncode == 1
    after = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert after.get("Policy") == before.get("Policy")


def test_create_bucket_makes_it_and_wires_it(aws_endpoint: str, unique: str, tmp_path: Path) -> None:
    # GIVEN a bucket that does not exist yet (LocalStack, a fresh account)
    settings = fast_settings(unique, tmp_path)
    bucket = f"aws-waf-logs-new-{unique}"
    env = cli_env(aws_endpoint, settings)
    # WHEN setup runs with --create-bucket, twice
    first = run_cli("setup", "--log-bucket", bucket, "--create-bucket", env=env)
    again = run_cli("setup", "--log-bucket", bucket, "--create-bucket", env=env)
    # THEN the first creates and wires it, the second finds it
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["report"][f"s3://{bucket}"] == "created, notifies the queue"
    assert json.loads(again.stdout)["report"][f"s3://{bucket}"] == "notifies the queue"
    config = aws_client("s3").get_bucket_notification_configuration(Bucket=bucket)
    assert [q["Id"] for q in config["QueueConfigurations"]] == [LOG_NOTIFICATION_ID]


@pytest.mark.parametrize("argv", [["setup", "--create-bucket"]])
def test_create_bucket_alone_is_a_usage_error(argv: list[str]) -> None:
    result = run_cli(*argv, env=cli_env(None))
    assert result.returncode == 2
    assert result.stderr.strip() == "secops: error: --create-bucket needs --log-bucket NAME"
