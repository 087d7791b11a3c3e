"""The S3 path of compose.localstack.yml, its commands run directly (no Docker here):
`secops setup` as the compose file runs it (log bucket created and wired), `secops
put-log` as the README drops a WAF log file, `secops run` reading it because S3 notified
the queue, and `secops incidents list` showing what it became. moto over HTTP stands in
for LocalStack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.worker_harness import fast_settings
from tests.fixtures.worker_process import SECOPS, cli_env, run_cli

pytestmark = pytest.mark.slow

COMPOSE = Path(__file__).resolve().parents[2] / "compose.localstack.yml"


def compose_setup_command(bucket: str) -> list[str]:
    """The setup service's command, with the bucket variable set to ``bucket``."""
    command: list[str] = yaml.safe_load(COMPOSE.read_text())["services"]["setup"]["command"]
    return [bucket if part.startswith("${WAF_LOG_BUCKET") else part for part in command]


def compose_channels() -> str:
    anchor: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["x-localstack-aws"]
    value = str(anchor["SECOPS_CHANNELS"])
    return value.split(":-", 1)[1].rstrip("}") if value.startswith("${") else value


# Setup, put-log, a worker run and a listing, each a process: beyond 120 s when loaded.
@pytest.mark.timeout(360)
def test_a_log_file_dropped_into_the_bucket_becomes_incidents(
    aws_endpoint: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN the compose stack's setup, run as compose runs it (the bucket is new)
    bucket = f"aws-waf-logs-local-{unique}"
    settings = fast_settings(unique, tmp_path)
    env = cli_env(aws_endpoint, settings, channels=compose_channels(), eventbridge_bus=f"bus-{unique}")
    command = compose_setup_command(bucket)
    assert command[:2] == ["secops", "setup"]
    setup = run_cli(*command[1:], env=env)
    assert setup.returncode == 0, setup.stderr
    assert json.loads(setup.stdout)["report"][f"s3://{bucket}"] == "created, notifies the queue"

    # WHEN a WAF log file is dropped into the bucket, as the README says
    put = run_cli("put-log", bucket, env=env)
    assert put.returncode == 0, put.stderr
    dropped = json.loads(put.stdout)
    assert dropped["key"].startswith("AWSLogs/") and "/WAFLogs/" in dropped["key"]
    # AND the worker runs until the queue is idle
    worker_env = {**env, "SECOPS_EXIT_WHEN_IDLE_POLLS": "2", "SECOPS_WAIT_TIME_S": "1"}
    worker = subprocess.run([*SECOPS, "run"], env=worker_env, capture_output=True, timeout=180, check=False)
    assert worker.returncode == 0, worker.stderr.decode()[-3000:]

    # THEN the file's attacks are incidents an operator can list
    listed = run_cli("incidents", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    incidents = json.loads(listed.stdout)["incidents"]
    assert incidents and all(i["count"] >= 1 for i in incidents)


def test_put_log_uploads_a_given_file_under_waf_s_layout(
    aws_endpoint: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN a bucket and a WAF log file of one's own
    bucket = f"aws-waf-logs-own-{unique}"
    env = cli_env(aws_endpoint, fast_settings(unique, tmp_path))
    assert run_cli("setup", "--log-bucket", bucket, "--create-bucket", env=env).returncode == 0
    own = tmp_path / "mine.log"
    own.write_text('{"timestamp": 1, "action": "ALLOW"}\n')
    # WHEN it is put
    put = run_cli("put-log", bucket, str(own), env=env)
    # THEN it is there under the WAF layout, byte for byte; a missing file is one line,
    # exit 1 (as for every command's input file)
    assert put.returncode == 0, put.stderr
    result = json.loads(put.stdout)
    assert result["key"].endswith("/mine.log") and result["bytes"] == own.stat().st_size
    missing = run_cli("put-log", bucket, str(tmp_path / "nope.log"), env=env)
    assert missing.returncode == 1 and missing.stderr.startswith("secops: error: cannot read")
