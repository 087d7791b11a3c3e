"""Edges of the processor that must not end as a crash: an event too big to store, a missing table.

A crash is a retry, and enough retries put a message in the DLQ with nothing recorded
about why. Bad input must be recorded as rejected; a broken deployment must open the
circuit and leave the event alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from testkit.events import simplified
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from worker.daemon import build_worker, run_worker
from worker.pipeline.outcome import Outcome
from worker.platform.metrics import Metrics

pytestmark = pytest.mark.usefixtures("aws_endpoint")


@pytest.fixture
def env(unique: str, tmp_path: Path) -> Env:
    return make_env(fast_settings(unique, tmp_path))


@pytest.mark.slow
# A worker subprocess and a redrive to the DLQ: 21 s quiet, past the default 120 s guard
# on a loaded machine.
@pytest.mark.timeout(300)
def test_an_event_too_big_to_store_is_rejected_into_the_dlq_with_its_reason(env: Env) -> None:
    # GIVEN a valid event just under SQS's 1 MiB whose JSON exceeds the store's item budget
    big = simplified(
        "too-big",
        uri="/" + "u" * 60_000,
        user_agent="x" * 60_000,
        args="a" * 60_000,
        headers={f"h{n}": "v" * 8_000 for n in range(95)},
    )
    env.send([big])

    # WHEN the worker drains
    worker = env.drain()

    # THEN it was rejected every time (no crash), reached the DLQ, and the reason is stored
    assert worker.consumer.stats.outcomes == {"rejected": env.settings.max_receive_count}
    assert env.queue_counts(env.resources.dlq_url) == (1, 0)
    record = env.store.get("evt#too-big")
    assert record is not None and record.status == "rejected"
    assert record.rejection_code == "event_too_large"
    assert env.model.calls == 0


def test_a_missing_table_opens_the_circuit_instead_of_crashing_events_into_the_dlq(env: Env) -> None:
    # GIVEN a worker whose table is gone (deleted after start-up, or a wrong name)
    settings = env.settings.model_copy(update={"table_name": f"{env.settings.table_name}-gone"})
    env.send([simplified("no-table")])
    worker = build_worker(
        settings,
        clients=env.clients,
        resources=env.resources,
        agents=env.agents(),
        metrics=Metrics(enabled=False),
    )
    outcomes: list[Outcome] = []

    def first_outcome_stops(outcome: Outcome) -> None:
        outcomes.append(outcome)
        worker.consumer.stop()

    worker.consumer.on_outcome = first_outcome_stops

    # WHEN it takes the message
    with capture_logs() as logs:
        run_worker(worker, with_scheduler=False)

    # THEN the outage path: circuit open, message kept for later, no rejection, no traceback
    assert [(o.kind, o.reason) for o in outcomes] == [("unavailable", "store_misconfigured")]
    # (open for 1 s in these settings, so it may already let a probe through)
    assert worker.consumer.circuit.state in ("open", "half_open")
    assert env.store.get("evt#no-table") is None
    assert env.queue_counts(env.resources.dlq_url) == (0, 0)
    assert "processing_crashed" not in [entry["event"] for entry in logs]
    assert any(entry["event"] == "store_unusable" for entry in logs)
