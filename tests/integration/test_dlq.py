"""``secops dlq inspect|replay`` against moto's server over HTTP.

The DLQ gets its messages the way production fills it (a worker rejecting poison until
SQS's redrive moves it) or by hand (``send_message`` to the DLQ, standing in for an
event that exhausted its retries during an outage).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.events import simplified
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from worker.cli.app import main
from worker.ops.dlq import (
    NOT_RECORDED,
    DlqInspector,
    DlqReplayer,
    NativeMoveUnsupported,
    ReplayFilter,
    native_move,
)
from worker.ops.message_keys import event_key_of_body
from worker.store import rejection_key

pytestmark = pytest.mark.usefixtures("aws_endpoint")

JUNK = "{not json"
# An allowed SQL injection reached the application: severity 4, escalated, one notice.
ESCALATING = simplified("evt-ok", action="ALLOW", rule_name="SQLi_BODY")
BAD_IP = simplified("evt-bad", source_ip="999.1.1.1")


@pytest.fixture
def env(unique: str, tmp_path: Path) -> Env:
    return make_env(fast_settings(unique, tmp_path))


def _to_dlq(env: Env, bodies: list[Any], **kwargs: Any) -> None:
    """Put messages straight into the DLQ (as an outage's exhausted retries would)."""
    for body in bodies:
        text = body if isinstance(body, str) else json.dumps(body)
        env.clients.sqs.send_message(QueueUrl=env.resources.dlq_url, MessageBody=text, **kwargs)


def _inspector(env: Env) -> DlqInspector:
    return DlqInspector(sqs=env.clients.sqs, store=env.store, dlq_url=_dlq(env), receive_wait_s=0)


def _replayer(env: Env, sqs: Any = None, **kwargs: Any) -> DlqReplayer:
    return DlqReplayer(
        sqs=sqs or env.clients.sqs,
        store=env.store,
        dlq_url=_dlq(env),
        source_url=env.resources.queue_url,
        receive_wait_s=0,
        **kwargs,
    )


def _dlq(env: Env) -> str:
    assert env.resources.dlq_url is not None
    return env.resources.dlq_url


def _bodies(env: Env, url: str) -> list[str]:
    """Every body in a queue (consumed: for assertions at the end of a test)."""
    out: list[str] = []
    while batch := env.clients.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        out += [m["Body"] for m in batch]
        env.clients.sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return out


def _poisoned(env: Env) -> None:
    """A worker rejects a non-JSON body and an invalid event until SQS moves both to the DLQ."""
    env.send([JUNK, BAD_IP])
    env.drain()
    assert env.queue_counts(_dlq(env)) == (2, 0)


def _recorded_rejections(env: Env) -> None:
    """What ``_poisoned`` leaves behind, written directly (faster, for tests of the tools)."""
    env.store.reject(rejection_key(JUNK), code="invalid_json", reason="payload is not JSON", message_id="m-1")
    env.store.reject(
        "evt#evt-bad", code="invalid_event", reason="source IP '999.1.1.1' is not an IP", message_id="m-2"
    )
    _to_dlq(env, [JUNK, BAD_IP])


# ---- inspect -----------------------------------------------------------------------------


def test_inspect_groups_by_recorded_reason_and_consumes_nothing(env: Env) -> None:
    # GIVEN two poison messages moved by SQS, a completed event and an unknown one by hand
    _poisoned(env)
    env.send([ESCALATING])
    env.drain()
    env.delivered(env.critical_tap)
    _to_dlq(env, [ESCALATING, simplified("evt-never-seen")])

    # WHEN an operator inspects the DLQ
    report = _inspector(env).inspect(limit=100)

    # THEN every message was read, grouped by what the store recorded for its key
    assert report.inspected == 4 and not report.limit_reached
    groups = {g.reason: g for g in report.groups}
    assert {r: g.count for r, g in groups.items()} == {"invalid_json": 1, "invalid_event": 1, NOT_RECORDED: 2}
    assert groups["invalid_json"].sample_event_keys == [rejection_key(JUNK)]
    assert "999.1.1.1" in (groups["invalid_event"].reason_text or "")
    assert dict(groups[NOT_RECORDED].statuses) == {"escalated": 1, "absent": 1}
    # SQS's redrive kept counting receives; the hand-sent ones were received once (by us)
    assert groups["invalid_json"].min_receive_count > env.settings.max_receive_count
    assert groups[NOT_RECORDED].max_receive_count == 1
    assert all(g.oldest_age_s is not None and g.oldest_age_s < 120 for g in report.groups)
    # AND nothing stays hidden: all four are visible again right away
    assert env.queue_counts(_dlq(env)) == (4, 0)
    as_json = report.to_dict()
    assert as_json["inspected"] == 4 and len(as_json["messages"]) == 4


def test_inspect_stops_at_the_limit_and_gives_back_what_it_read(env: Env) -> None:
    _to_dlq(env, [simplified(f"evt-{i}") for i in range(15)])

    report = _inspector(env).inspect(limit=12)

    assert report.inspected == 12 and report.limit_reached
    assert env.queue_counts(_dlq(env)) == (15, 0)


def test_inspect_of_an_empty_dlq(env: Env) -> None:
    report = _inspector(env).inspect()
    assert report.empty and report.groups == []


def test_event_keys_of_dlq_bodies_are_the_keys_the_processor_recorded(env: Env) -> None:
    # The wrapped seed payload, a bare event and two kinds of poison.
    wrapped = {"prompt": json.dumps({"action": "analyze", "event": simplified("evt-wrapped")})}
    env.send([wrapped, simplified("evt-bare"), JUNK, BAD_IP])
    env.drain()
    for body in (json.dumps(wrapped), json.dumps(simplified("evt-bare")), JUNK, json.dumps(BAD_IP)):
        assert env.store.get(event_key_of_body(body)) is not None, body


# ---- replay --------------------------------------------------------------------------------


def test_replay_moves_at_most_limit_messages(env: Env) -> None:
    _to_dlq(env, [simplified(f"evt-{i}") for i in range(5)])

    summary = _replayer(env).replay(rate=1000, limit=2)

    assert (summary.moved, summary.limit_reached) == (2, True)
    assert env.queue_counts(_dlq(env)) == (3, 0)
    assert env.queue_counts(env.resources.queue_url) == (2, 0)


def test_replay_preserves_body_and_message_attributes(env: Env) -> None:
    body = json.dumps(simplified("evt-attrs"))
    _to_dlq(
        env,
        [body],
        MessageAttributes={
            "producer": {"DataType": "String", "StringValue": "waf-firehose"},
            "batch": {"DataType": "Number", "StringValue": "7"},
        },
    )

    assert _replayer(env).replay(rate=1000).moved == 1

    (message,) = env.clients.sqs.receive_message(
        QueueUrl=env.resources.queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=0
    )["Messages"]
    assert message["Body"] == body
    assert {k: v["StringValue"] for k, v in message["MessageAttributes"].items()} == {
        "producer": "waf-firehose",
        "batch": "7",
    }


def test_replay_by_max_age_takes_only_younger_messages(env: Env) -> None:
    # GIVEN one message enqueued two seconds before the other
    _to_dlq(env, [simplified("evt-old")])
    time.sleep(2.1)
    _to_dlq(env, [simplified("evt-young")])

    summary = _replayer(env).replay(rate=1000, where=ReplayFilter(max_age_s=1.5))

    assert (summary.moved, summary.skipped, summary.event_keys) == (1, 1, ["evt#evt-young"])
    assert [json.loads(b)["id"] for b in _bodies(env, env.resources.queue_url)] == ["evt-young"]
    # The old one is visible in the DLQ again at once, not after a visibility timeout.
    assert env.queue_counts(_dlq(env)) == (1, 0)


def test_replay_by_reason_moves_only_that_reason(env: Env) -> None:
    _recorded_rejections(env)
    _to_dlq(env, [simplified("evt-outage")])

    summary = _replayer(env).replay(rate=1000, where=ReplayFilter(reasons=frozenset({"invalid_event"})))

    assert (summary.moved, summary.skipped, dict(summary.by_reason)) == (1, 2, {"invalid_event": 1})
    assert _bodies(env, env.resources.queue_url) == [json.dumps(BAD_IP)]
    assert env.queue_counts(_dlq(env)) == (2, 0)


def test_replay_not_recorded_reason_selects_events_the_store_never_rejected(env: Env) -> None:
    _recorded_rejections(env)
    _to_dlq(env, [simplified("evt-outage")])

    summary = _replayer(env).replay(rate=1000, where=ReplayFilter(reasons=frozenset({NOT_RECORDED})))

    assert summary.event_keys == ["evt#evt-outage"]


def test_replay_by_event_key_finds_it_behind_more_than_one_batch(env: Env) -> None:
    # GIVEN 25 messages: the wanted one is in none of the first two receives' worth
    _to_dlq(env, [simplified(f"evt-{i:02d}") for i in range(25)])

    summary = _replayer(env).replay(rate=1000, where=ReplayFilter(event_keys=frozenset({"evt#evt-23"})))

    assert (summary.moved, summary.skipped) == (1, 24)
    assert [json.loads(b)["id"] for b in _bodies(env, env.resources.queue_url)] == ["evt-23"]
    assert env.queue_counts(_dlq(env)) == (24, 0)


def test_dry_run_moves_nothing_and_hides_nothing(env: Env) -> None:
    _recorded_rejections(env)
    _to_dlq(env, [simplified("evt-outage")])

    summary = _replayer(env).replay(rate=1000, dry_run=True)

    assert (summary.mode, summary.matched, summary.moved) == ("dry-run", 3, 0)
    assert dict(summary.by_reason) == {"invalid_json": 1, "invalid_event": 1, NOT_RECORDED: 1}
    assert env.queue_counts(_dlq(env)) == (3, 0)
    assert env.queue_counts(env.resources.queue_url) == (0, 0)


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RecordingSqs:
    """The real client, recording when (on the fake clock) each SendMessageBatch went out."""

    def __init__(self, sqs: Any, clock: FakeClock, *, fail_delete: bool = False) -> None:
        self._sqs = sqs
        self._clock = clock
        self._fail_delete = fail_delete
        self.sends: list[tuple[float, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.sends.append((self._clock(), len(kwargs["Entries"])))
        return self._sqs.send_message_batch(**kwargs)

    def delete_message_batch(self, **kwargs: Any) -> Any:
        if self._fail_delete:
            raise RuntimeError("process killed between send and delete")
        return self._sqs.delete_message_batch(**kwargs)


def test_rate_limit_is_honoured_on_a_fake_clock(env: Env) -> None:
    # GIVEN 12 messages and a rate of 2 a second (a burst of 2)
    _to_dlq(env, [simplified(f"evt-{i:02d}") for i in range(12)])
    clock = FakeClock()
    sqs = RecordingSqs(env.clients.sqs, clock)

    # WHEN they are replayed
    summary = _replayer(env, sqs, clock=clock, sleep=clock.sleep).replay(rate=2)

    # THEN all moved, no more than burst + rate * t by any time t, over (12 - 2) / 2 s
    assert summary.moved == 12
    sent = 0
    for at, count in sqs.sends:
        sent += count
        assert sent <= 2 + 2 * (at - 1000.0) + 1e-6
    assert clock.now - 1000.0 == pytest.approx(5.0)
    assert summary.elapsed_s == pytest.approx(5.0)


def test_a_crash_between_send_and_delete_duplicates_and_the_worker_processes_once(env: Env) -> None:
    # GIVEN an escalating event in the DLQ (say its retries ran out during an outage)
    _to_dlq(env, [ESCALATING])
    clock = FakeClock()
    crashing = RecordingSqs(env.clients.sqs, clock, fail_delete=True)

    # WHEN the replay dies after SQS accepted the copy, before the DLQ's is deleted
    with pytest.raises(RuntimeError, match="killed"):
        _replayer(env, crashing).replay(rate=1000)

    # THEN the message is in both queues (a duplicate, not a loss), visible in the DLQ
    assert env.queue_counts(_dlq(env)) == (1, 0)
    assert env.queue_counts(env.resources.queue_url) == (1, 0)

    # WHEN it is replayed again and the worker drains the source queue
    assert _replayer(env).replay(rate=1000).moved == 1
    worker = env.drain()

    # THEN the event was analyzed once and notified once; the second copy was a duplicate
    assert env.model.calls == 1
    assert len(env.delivered(env.critical_tap)) == 1
    # (two copies in one batch race for the claim: the loser backs off, then sees it done)
    outcomes = worker.consumer.stats.outcomes
    assert (outcomes["done"], outcomes["duplicate"]) == (1, 1)
    assert set(outcomes) <= {"done", "duplicate", "in_progress"}
    assert env.queue_counts(_dlq(env)) == (0, 0)


def test_native_move_on_moto_reports_the_endpoint_lacks_it(env: Env) -> None:
    _to_dlq(env, [simplified("evt-native")])

    # moto 5 does not implement StartMessageMoveTask: its server answers an HTML 500 page.
    with pytest.raises(NativeMoveUnsupported, match="HTTP 500"):
        native_move(_replayer(env), rate=10)

    assert env.queue_counts(_dlq(env)) == (1, 0)


def test_replayed_events_are_acknowledged_or_rejected_again_end_to_end(env: Env) -> None:
    # GIVEN a worker that escalated a healthy event and sent two poison messages to the DLQ
    env.send([ESCALATING, JUNK, BAD_IP])
    env.drain()
    assert env.model.calls == 1
    assert len(env.delivered(env.critical_tap)) == 1
    before = {k: env.store.get(k) for k in (rejection_key(JUNK), "evt#evt-bad")}
    # ... and the healthy event's message in the DLQ too, by hand
    _to_dlq(env, [ESCALATING])
    assert env.queue_counts(_dlq(env)) == (3, 0)

    # WHEN everything is replayed and the worker drains again
    summary = _replayer(env).replay(rate=1000)
    assert summary.moved == 3
    env.drain()

    # THEN no model call and no notification for the completed event
    assert env.model.calls == 1
    assert env.delivered(env.critical_tap) == []
    assert env.store.get("evt#evt-ok").status == "escalated"  # type: ignore[union-attr]
    # AND both poison messages are back in the DLQ with the same recorded reasons
    assert env.queue_counts(_dlq(env)) == (2, 0)
    for key, earlier in before.items():
        now = env.store.get(key)
        assert earlier is not None and now is not None
        assert (now.status, now.rejection_code, now.rejection_reason) == (
            "rejected",
            earlier.rejection_code,
            earlier.rejection_reason,
        )
        assert now.attempts > earlier.attempts
    assert sorted(_bodies(env, _dlq(env))) == sorted([JUNK, json.dumps(BAD_IP)])


# ---- the command line ----------------------------------------------------------------------


@pytest.fixture
def cli_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    """The worker's resources named through the environment, as an operator's shell would."""
    settings = env.settings
    for name, value in {
        "SECOPS_QUEUE_NAME": settings.queue_name,
        "SECOPS_DLQ_NAME": settings.dlq_name,
        "SECOPS_TABLE_NAME": settings.table_name,
        "SECOPS_CRITICAL_TOPIC_NAME": settings.critical_topic_name,
        "SECOPS_MONITORING_TOPIC_NAME": settings.monitoring_topic_name,
        "SECOPS_LOG_FORMAT": "console",
        "SECOPS_LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    return env


def test_cli_inspect_json(cli_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    _recorded_rejections(cli_env)
    capsys.readouterr()  # the store logged to stdout before the CLI set logging up

    assert main(["dlq", "inspect", "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["inspected"] == 2 and report["empty"] is False
    assert sorted(g["reason"] for g in report["groups"]) == ["invalid_event", "invalid_json"]
    assert cli_env.queue_counts(_dlq(cli_env)) == (2, 0)


def test_cli_inspect_table(cli_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    _recorded_rejections(cli_env)
    capsys.readouterr()  # the store logged to stdout before the CLI set logging up

    assert main(["dlq", "inspect"]) == 0

    out = capsys.readouterr().out
    assert "2 messages inspected" in out and "invalid_json" in out and "invalid_event" in out


def test_cli_replay_dry_run_json(cli_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    _to_dlq(cli_env, [simplified("evt-a"), simplified("evt-b")])

    assert main(["dlq", "replay", "--dry-run", "--json", "--event-key", "evt#evt-b"]) == 0

    summary = json.loads(capsys.readouterr().out)
    assert (summary["mode"], summary["matched"], summary["moved"]) == ("dry-run", 1, 0)
    assert summary["event_keys"] == ["evt#evt-b"]
    assert cli_env.queue_counts(_dlq(cli_env)) == (2, 0)


def test_cli_replay_moves_and_prints_a_summary(cli_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    _to_dlq(cli_env, [simplified("evt-a"), simplified("evt-b")])

    assert main(["dlq", "replay", "--rate", "100"]) == 0

    out = capsys.readouterr().out
    assert "DLQ replay (move)" in out and "moved" in out
    assert cli_env.queue_counts(cli_env.resources.queue_url) == (2, 0)


def test_cli_logs_only_warnings_unless_a_level_is_asked_for(
    cli_env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN rejected messages in the DLQ and no log level set (an operator's shell)
    _recorded_rejections(cli_env)
    monkeypatch.delenv("SECOPS_LOG_LEVEL")
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    capsys.readouterr()

    # WHEN the DLQ is inspected and a replay is tried
    assert main(["dlq", "inspect"]) == 0
    assert main(["dlq", "replay", "--dry-run"]) == 0

    # THEN the tables are the output; nothing is logged at INFO on stderr
    quiet = capsys.readouterr()
    assert "2 messages inspected" in quiet.out and "DLQ replay (dry-run)" in quiet.out
    assert quiet.err == ""

    # AND a level asked for is honoured
    monkeypatch.setenv("SECOPS_LOG_LEVEL", "INFO")
    assert main(["dlq", "inspect", "--json"]) == 0
    assert "dlq_inspected" in capsys.readouterr().err


def test_cli_empty_dlq(cli_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "inspect"]) == 0
    assert capsys.readouterr().out.strip() == "DLQ is empty"
    assert main(["dlq", "replay"]) == 0
    assert capsys.readouterr().out.strip() == "DLQ is empty"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["dlq", "inspect", "--limit", "-3"], "must be greater than 0"),
        (["dlq", "replay", "--limit", "0"], "must be greater than 0"),
        (["dlq", "replay", "--rate", "fast"], "is not a number"),
        (["dlq", "replay", "--max-age", "yesterday"], "is not a duration"),
    ],
)
def test_cli_bad_arguments_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_cli_native_with_a_filter_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # Refused before any AWS call: no queue needs to exist.
    assert main(["dlq", "replay", "--native", "--reason", "invalid_json"]) == 2
    err = capsys.readouterr().err
    assert "--native cannot be combined with --reason" in err and err.count("\n") == 1


def test_cli_native_on_moto_says_so_in_one_line(cli_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    _to_dlq(cli_env, [simplified("evt-native")])

    assert main(["dlq", "replay", "--native"]) == 1

    err = capsys.readouterr().err.strip().splitlines()
    # moto's server logs its own traceback through werkzeug; ours is the last line, alone.
    assert err[-1].startswith("secops: error: this SQS endpoint does not support StartMessageMoveTask")
    assert "without --native works everywhere" in err[-1]
    assert cli_env.queue_counts(_dlq(cli_env)) == (1, 0)
