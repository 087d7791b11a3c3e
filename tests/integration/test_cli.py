"""The operator's command line as a subprocess: setup, send, analyze, health, settings.

Every command runs the way an operator (or ECS) runs it, against moto's server. What
an operator can get wrong ends in one line on stderr and exit 1 or 2, never a traceback.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.events import simplified, waf_record
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from tests.fixtures.worker_process import cli_env, run_cli, start_worker, wait_for
from worker.cli.app import main
from worker.platform.health import check_health


def _one_line(stderr: str) -> str:
    """The single line a failure must be; no traceback, nothing else."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# ---- secops setup ----------------------------------------------------------------------


@pytest.mark.slow
def test_setup_twice_reports_exists_and_points_the_redrive_policy_at_the_dlq(
    aws_endpoint: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN fresh names
    settings = fast_settings(unique, tmp_path, max_receive_count=4)
    env = cli_env(aws_endpoint, settings, max_receive_count=4)

    # WHEN setup runs twice
    first = run_cli("setup", env=env)
    second = run_cli("setup", env=env)

    # THEN the first created everything, the second found everything
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    names = [
        settings.queue_name,
        settings.dlq_name,
        settings.critical_topic_name,
        settings.monitoring_topic_name,
        settings.table_name,
    ]
    assert json.loads(first.stdout)["report"] == dict.fromkeys(names, "created")
    assert json.loads(second.stdout)["report"] == dict.fromkeys(names, "exists")
    # AND the queue's redrive policy sends to the DLQ after maxReceiveCount receives
    resources = json.loads(second.stdout)["resources"]
    from worker.platform import aws

    sqs = aws.client("sqs")
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=resources["queue_url"], AttributeNames=["RedrivePolicy"])[
            "Attributes"
        ]["RedrivePolicy"]
    )
    dlq_arn = sqs.get_queue_attributes(QueueUrl=resources["dlq_url"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    assert policy["deadLetterTargetArn"] == dlq_arn
    assert int(policy["maxReceiveCount"]) == 4


@pytest.mark.slow
def test_an_unreachable_endpoint_is_one_line_and_quick(tmp_path: Path) -> None:
    # GIVEN an endpoint nothing listens on (port 9, discard)
    env = cli_env("http://127.0.0.1:9")

    # WHEN setup runs
    started = time.monotonic()
    result = run_cli("setup", env=env, timeout=60)

    # THEN it fails in one line, after botocore's bounded retries, not a hang
    assert result.returncode == 1
    assert "cannot reach http://127.0.0.1:9" in _one_line(result.stderr)
    assert time.monotonic() - started < 20


@pytest.mark.slow
def test_run_without_its_table_stops_at_start_up_in_one_line(
    aws_endpoint: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN the queue and topics exist but the table name is wrong
    env = make_env(fast_settings(unique, tmp_path))
    cli = cli_env(aws_endpoint, env.settings, table_name=f"{env.settings.table_name}-typo")

    # WHEN the daemon starts
    result = run_cli("run", env=cli, timeout=60)

    # THEN it refuses before taking a message, instead of failing on every one
    assert result.returncode == 1
    assert _one_line(result.stderr) == (
        f"secops: error: table '{env.settings.table_name}-typo' not found: "
        "run `secops setup` or set SECOPS_TABLE_NAME"
    )
    assert env.queue_counts(env.resources.queue_url) == (0, 0)


# ---- secops send -----------------------------------------------------------------------


@pytest.fixture
def queue_env(aws_endpoint: str, unique: str, tmp_path: Path) -> tuple[Env, dict[str, str]]:
    env = make_env(fast_settings(unique, tmp_path))
    return env, cli_env(aws_endpoint, env.settings)


def _bodies(env: Env) -> list[str]:
    out: list[str] = []
    while batch := env.clients.sqs.receive_message(
        QueueUrl=env.resources.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
    ).get("Messages", []):
        out += [m["Body"] for m in batch]
    return out


@pytest.mark.slow
def test_send_skips_a_malformed_line_with_one_message_and_exit_1(
    queue_env: tuple[Env, dict[str, str]], tmp_path: Path
) -> None:
    # GIVEN 12 events as JSON lines, a comment, a blank line and one line that is not JSON
    env, cli = queue_env
    events = [simplified(f"send-{n}") for n in range(12)]
    lines = [json.dumps(e) for e in events[:5]] + ["# a comment", "", "{not json"]
    lines += [json.dumps(e) for e in events[5:]]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")

    # WHEN they are sent
    result = run_cli("send", str(path), env=cli)

    # THEN the good ones are queued, the bad one is named on one line, and exit is 1
    assert result.returncode == 1
    assert _one_line(result.stderr).startswith("secops: line 8 skipped: not JSON")
    summary = json.loads(result.stdout)
    assert (summary["sent"], summary["skipped"], summary["failed"]) == (12, 1, 0)
    assert summary["skipped_lines"] == [8]
    assert sorted(json.loads(b)["id"] for b in _bodies(env)) == sorted(e["id"] for e in events)


@pytest.mark.slow
def test_send_takes_a_json_array_file_and_raw_lines_from_stdin(
    queue_env: tuple[Env, dict[str, str]], tmp_path: Path
) -> None:
    # GIVEN a JSON array file, and stdin with a line that is not JSON
    env, cli = queue_env
    array = tmp_path / "events.json"
    array.write_text(json.dumps([simplified("arr-1"), waf_record(request_id="arr-2")], indent=2))

    # WHEN both are sent, stdin with --raw
    from_array = run_cli("send", str(array), env=cli)
    from_stdin = run_cli("send", "-", "--raw", env=cli, stdin='{"id": "raw-1"}\nnot json at all\n')

    # THEN both succeed, and --raw sent the bad line verbatim (the worker rejects it later)
    assert from_array.returncode == 0, from_array.stderr
    assert json.loads(from_array.stdout)["sent"] == 2
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert json.loads(from_stdin.stdout) == {
        "sent": 2,
        "skipped": 0,
        "failed": 0,
        "skipped_lines": [],
        "failures": [],
    }
    assert "not json at all" in _bodies(env)


@pytest.mark.slow
def test_send_now_moves_stale_samples_into_the_monitor_window(
    queue_env: tuple[Env, dict[str, str]], tmp_path: Path
) -> None:
    # GIVEN the bundled samples, written days ago
    env, cli = queue_env
    samples = Path(__file__).resolve().parents[2] / "worker" / "embedded" / "samples" / "events.jsonl"

    # WHEN they are sent with --now
    started = time.time()
    result = run_cli("send", str(samples), "--now", env=cli)

    # THEN the newest record is stamped now, so `secops monitor --hours 1` would see it
    assert result.returncode == 1  # the samples hold malformed lines on purpose
    assert json.loads(result.stdout)["sent"] > 0
    from worker.ops.timeshift import timestamps

    newest = max(t for body in _bodies(env) if body.startswith("{") for t in timestamps(json.loads(body)))
    assert started - 5 <= newest.timestamp() <= time.time()


# ---- secops analyze --------------------------------------------------------------------


def test_analyze_prints_one_result_per_line_and_an_error_object_for_a_bad_line(tmp_path: Path) -> None:
    # GIVEN a simplified event, a malformed line and a native WAF record (counted: reached the app)
    path = tmp_path / "events.jsonl"
    counted = waf_record(
        counted=True,
        group="AWSManagedRulesCommonRuleSet",
        rule_id="CrossSiteScripting_BODY",
        label="awswaf:managed:aws:core-rule-set:CrossSiteScripting_Body",
    )
    path.write_text("\n".join([json.dumps(simplified("an-1")), "{oops", json.dumps(counted)]) + "\n")

    # WHEN it is analyzed with the offline rules provider
    result = run_cli("analyze", str(path), env=cli_env(None, provider="rules"))

    # THEN three lines: two results and one error object; exit 1 because one failed
    assert result.returncode == 1
    first, bad, third = (json.loads(line) for line in result.stdout.splitlines())
    for line, body in ((1, first), (3, third)):
        assert body["line"] == line and body["status"] == "success"
        assert set(body) >= {
            "event_key",
            "severity_floor",
            "model_severity",
            "severity_rating",
            "triage",
            "analyzed_by",
        }
        assert body["analyzed_by"] == "rules" and body["model_severity"] is None
    assert (first["event_key"], first["severity_rating"], first["triage"]) == ("evt#an-1", 3, "monitor")
    assert (third["severity_rating"], third["triage"]) == (4, "escalate")
    assert bad["line"] == 2 and bad["status"] == "error" and bad["error"]["code"] == "invalid_json"


def test_analyze_from_stdin_exits_0_when_every_line_succeeds() -> None:
    result = run_cli(
        "analyze", "-", env=cli_env(None, provider="rules"), stdin=json.dumps(simplified("in-1")) + "\n"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["event_key"] == "evt#in-1"


@pytest.mark.parametrize(
    ("argument", "content", "expected"),
    [
        ("missing.jsonl", None, "secops: error: missing.jsonl: no such file"),
        ("a-directory", "dir", "is a directory, expected a JSON lines file"),
        ("latin1.jsonl", b'{"id": "caf\xe9"}\n', "not UTF-8 text"),
    ],
)
def test_analyze_refuses_an_unreadable_input_in_one_line(
    tmp_path: Path, argument: str, content: Any, expected: str
) -> None:
    # GIVEN a missing file, a directory, or a file that is not UTF-8
    target = tmp_path / argument
    if content == "dir":
        target.mkdir()
    elif content is not None:
        target.write_bytes(content)

    # WHEN it is analyzed (the missing one by a relative name, as an operator types it)
    result = run_cli("analyze", argument if content is None else str(target), env=cli_env(None))

    # THEN one line, exit 1, nothing on stdout
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert line == expected if content is None else expected in line
    assert result.stdout == ""


def test_analyze_refuses_non_utf8_on_stdin_in_one_line() -> None:
    result = run_cli("analyze", "-", env=cli_env(None), stdin=b'{"id": "caf\xe9"}\n')
    assert result.returncode == 1
    assert _one_line(result.stderr) == "secops: error: stdin: not UTF-8 text (invalid byte at byte 11)"


# ---- settings and health, in-process (nothing but the settings is touched) --------------


@pytest.mark.parametrize(
    ("variable", "value", "mentions"),
    [
        ("SECOPS_WAIT_TIME_S", "30", "at most 20 s"),
        ("SECOPS_BATCH_SIZE", "11", "at most 10 messages"),
        ("SECOPS_VISIBILITY_TIMEOUT_S", "50000", "at most 43200 s"),
        ("SECOPS_CONCURRENCY", "abc", "valid integer"),
        ("SECOPS_HEALTH_MAX_AGE_S", "25", "must exceed SECOPS_WAIT_TIME_S=20"),
    ],
)
def test_a_bad_setting_stops_run_in_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    mentions: str,
) -> None:
    # GIVEN one setting past its AWS limit (or not a number)
    monkeypatch.setenv(variable, value)

    # WHEN the daemon starts
    code = main(["run"])

    # THEN usage error: one line naming the variable and the limit, before touching AWS
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"secops: error: invalid settings: {variable}")
    assert mentions in line


def test_health_without_a_heartbeat_file_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SECOPS_HEALTH_FILE", str(tmp_path / "none"))
    assert main(["health"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == f"no heartbeat at {tmp_path / 'none'}: the consumer has not started"


def test_health_with_a_stale_heartbeat_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    beat = tmp_path / "health"
    beat.write_text(json.dumps({"ts": time.time() - 300, "pid": 1, "circuit": "closed", "in_flight": 0}))
    monkeypatch.setenv("SECOPS_HEALTH_FILE", str(beat))
    assert main(["health"]) == 1
    assert re.fullmatch(r"heartbeat is 30\d s old \(limit 90 s\)", _one_line(capsys.readouterr().err))


@pytest.mark.slow
def test_health_is_0_while_the_worker_runs_and_auto_logs_are_json_with_emf_on_stdout(
    aws_endpoint: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN a worker started the way ECS starts it, logs on `auto` (stdout is a file)
    env = make_env(fast_settings(unique, tmp_path))
    worker = start_worker(
        cli_env(
            aws_endpoint,
            env.settings,
            transport="inprocess",
            provider="rules",
            wait_time_s=1,
            monitor_enabled="false",
            log_format="auto",
            retry_base_delay_s=0,
            max_receive_count=5,
        ),
        tmp_path,
    )
    try:
        env.send([simplified(f"health-{unique}"), "{not json"])
        cli = cli_env(None, health_file=env.settings.health_file)
        wait_for(lambda: Path(env.settings.health_file).exists(), timeout=30, what="the first heartbeat")

        # WHEN the health check runs (as ECS runs it) while it consumes, and then, with a
        # far stricter limit than the default 90 s, while it long-polls an empty queue
        healthy = run_cli("health", env=cli)
        wait_for(lambda: env.store.get(f"evt#health-{unique}"), timeout=30, what="the event processed")
        fresh = []
        for _ in range(5):
            time.sleep(0.5)  # across several 1 s long polls
            fresh.append(check_health(env.settings.health_file, max_age_s=2.0).healthy)
    finally:
        worker.process.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=15)

    # THEN it reported healthy in one line on stdout, and the beat kept up with the polls
    assert code == 0
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.startswith("ok: heartbeat ") and healthy.stdout.count("\n") == 1
    assert fresh == [True] * 5
    # AND `auto` off a TTY meant JSON logs on stderr and EMF metrics on stdout
    assert [line for line in worker.log_lines() if "raw" in line] == []
    emf = worker.emf_lines()
    outcomes = {line["Outcome"] for line in emf if "Messages" in line}
    assert {"done", "rejected"} <= outcomes
    assert all(line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SecOpsWorker" for line in emf)
