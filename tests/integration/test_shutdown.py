"""SIGTERM/SIGINT to a ``secops run`` subprocess mid-batch: it exits in time, nothing is lost.

The worker is the real command line talking to moto's server and to the real agent
runtime app served over HTTP in this process, whose scripted model sleeps so work is
genuinely in flight when the signal lands. "Nothing lost" means: right after the exit
no message is hidden, and every event sent is either terminal in the store or its
message is visible in the queue, with no lease left to block its redelivery.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.app import create_app
from agent_runtime.service import build_service
from agent_runtime.settings import RuntimeSettings
from testkit.events import simplified
from testkit.scripted_model import ScriptedModel
from tests.fixtures.runtime_server import runtime_server
from tests.fixtures.worker_harness import LOW_ASSESSMENT, Env, fast_settings, make_env
from tests.fixtures.worker_process import WorkerProcess, cli_env, run_cli, start_worker, wait_for

pytestmark = [pytest.mark.usefixtures("aws_endpoint"), pytest.mark.slow]

WAIT_TIME_S = 1
# Start-up, the last acks and the interpreter's exit, on a loaded CI machine.
MARGIN_S = 3.0


@dataclass
class Scenario:
    env: Env
    worker: WorkerProcess
    keys: list[str]
    drain_timeout_s: float


@pytest.fixture
def scenario_factory(aws_endpoint: str, unique: str, tmp_path: Path) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(*, latency_s: float, drain_timeout_s: float, events: int) -> Scenario:
        env = make_env(fast_settings(unique, tmp_path))
        model = ScriptedModel([LOW_ASSESSMENT], cycle=True, latency_s=latency_s)
        app = create_app(build_service(RuntimeSettings(), model=model))
        server = runtime_server(app)
        url = server.__enter__()
        cleanups.append(server)
        bodies = [simplified(f"shutdown-{unique}-{n}", action="BLOCK") for n in range(events)]
        worker = start_worker(
            cli_env(
                aws_endpoint,
                env.settings,
                transport="http",
                runtime_url=url,
                concurrency=4,
                wait_time_s=WAIT_TIME_S,
                drain_timeout_s=drain_timeout_s,
                visibility_timeout_s=60,
                heartbeat_interval_s=5,
                monitor_enabled="false",
                log_format="json",
                # The events share one analysis signature; every one must pay the model's
                # latency for work to be in flight when the signal lands.
                reuse_enabled="false",
            ),
            tmp_path,
        )
        started.append(worker)
        env.send(bodies)
        return Scenario(env, worker, [f"evt#{b['id']}" for b in bodies], drain_timeout_s)

    cleanups: list[Any] = []
    yield start
    for worker in started:
        worker.kill()
    for server in cleanups:
        server.__exit__(None, None, None)


def _terminal(env: Env, keys: list[str]) -> set[str]:
    return {key for key, record in env.store.get_many(keys).items() if record.is_terminal}


def _interrupt_mid_batch(scenario: Scenario, signum: int, *, terminal_at_least: int) -> float:
    """Wait until work is both done and in flight, signal, and return the seconds to exit."""
    env = scenario.env
    wait_for(
        lambda: len(_terminal(env, scenario.keys)) >= terminal_at_least,
        timeout=30,
        what=f"{terminal_at_least} events processed",
    )
    # Work in flight is an event claimed (a live lease) and not finished: a message that
    # is only received, or finished but not yet deleted, is not work the drain waits for.
    wait_for(
        lambda: _claimed_unfinished(env, scenario.keys),
        timeout=30,
        what="an event claimed and still in analysis",
    )
    _, in_flight = env.queue_counts(env.resources.queue_url)
    assert in_flight > 0, "the signal must land mid-batch"
    signalled = time.monotonic()
    scenario.worker.process.send_signal(signum)
    code = scenario.worker.wait(timeout=scenario.drain_timeout_s + WAIT_TIME_S + MARGIN_S + 10)
    took = time.monotonic() - signalled
    assert code == 0, scenario.worker.stderr.read_text()[-3000:]
    return took


def _claimed_unfinished(env: Env, keys: list[str]) -> bool:
    now = time.time()
    return any(not r.is_terminal and r.lease_live(now) for r in env.store.get_many(keys).values())


def _assert_nothing_lost(scenario: Scenario) -> tuple[set[str], int]:
    env = scenario.env
    visible, hidden = env.queue_counts(env.resources.queue_url)
    assert hidden == 0, "a message is still hidden after the exit"
    records = env.store.get_many(scenario.keys)
    terminal = {key for key, record in records.items() if record.is_terminal}
    assert visible + len(terminal) == len(scenario.keys)
    # No lease held by the dead process blocks the redelivery of what is left.
    now = time.time()
    assert [k for k, r in records.items() if k not in terminal and r.lease_live(now)] == []
    assert env.queue_counts(env.resources.dlq_url) == (0, 0)
    return terminal, visible


def _events(scenario: Scenario, name: str) -> list[dict[str, Any]]:
    return [line for line in scenario.worker.log_lines() if line.get("event") == name]


def test_sigterm_lets_in_flight_work_finish_within_the_drain_timeout(scenario_factory: Any) -> None:
    # GIVEN 20 events, 4 at a time, each analysis taking 1 s, and a 6 s drain timeout
    scenario = scenario_factory(latency_s=1.0, drain_timeout_s=6.0, events=20)

    # WHEN SIGTERM lands while a batch is in flight
    took = _interrupt_mid_batch(scenario, signal.SIGTERM, terminal_at_least=4)

    # THEN the in-flight work finished (nothing released at the deadline), well in time
    assert took < scenario.drain_timeout_s + WAIT_TIME_S + MARGIN_S
    terminal, visible = _assert_nothing_lost(scenario)
    assert len(terminal) >= 5 and visible >= 1
    assert _events(scenario, "drain_timeout_releasing") == []
    stopped = _events(scenario, "consumer_stopped")
    assert len(stopped) == 1 and stopped[0]["abandoned"] == 0
    assert _events(scenario, "shutdown_requested")[0]["signal"] == "SIGTERM"
    # The heartbeat went with the worker: `secops health` fails at once, not 90 s later.
    assert not Path(scenario.env.settings.health_file).exists()
    # Every line is JSON, and the processing lines carry both keys of the message.
    lines = scenario.worker.log_lines()
    assert [line for line in lines if "raw" in line] == []
    processed = _events(scenario, "event_processed")
    assert len(processed) == len(terminal)
    assert all(line["event_key"].startswith("evt#shutdown-") and line["message_id"] for line in processed)
    # And with JSON logs, stdout carries the EMF metrics of the same work.
    emf = scenario.worker.emf_lines()
    assert {line["_aws"]["CloudWatchMetrics"][0]["Namespace"] for line in emf} == {"SecOpsWorker"}
    assert sum(line["Messages"] for line in emf if line.get("Outcome") == "done") == len(terminal)


def test_sigterm_releases_work_that_outlives_the_drain_timeout_and_still_exits_in_time(
    scenario_factory: Any,
) -> None:
    # GIVEN analyses that take 4 s and a drain timeout of 1 s
    scenario = scenario_factory(latency_s=4.0, drain_timeout_s=1.0, events=12)

    # WHEN SIGTERM lands while the second batch is in flight
    took = _interrupt_mid_batch(scenario, signal.SIGTERM, terminal_at_least=4)

    # THEN the process exits 0 in time, the unfinished messages are visible again, and
    # their leases were given back
    assert took < scenario.drain_timeout_s + WAIT_TIME_S + MARGIN_S
    _, visible = _assert_nothing_lost(scenario)
    assert visible >= 1
    released = _events(scenario, "drain_timeout_releasing")
    assert len(released) == 1 and released[0]["count"] >= 1
    stopped = _events(scenario, "consumer_stopped")
    assert stopped[0]["abandoned"] == released[0]["count"]
    assert _events(scenario, "abandoned_leases_released")[0]["count"] == released[0]["count"]
    assert not Path(scenario.env.settings.health_file).exists()
    assert all(line.get("message_id") for line in _events(scenario, "message_released"))


def test_sigint_drains_like_sigterm(scenario_factory: Any) -> None:
    # GIVEN a short run
    scenario = scenario_factory(latency_s=0.5, drain_timeout_s=3.0, events=8)

    # WHEN Ctrl-C lands mid-batch
    took = _interrupt_mid_batch(scenario, signal.SIGINT, terminal_at_least=2)

    # THEN it drains and exits 0 the same way
    assert took < scenario.drain_timeout_s + WAIT_TIME_S + MARGIN_S
    _assert_nothing_lost(scenario)
    assert _events(scenario, "shutdown_requested")[0]["signal"] == "SIGINT"
    assert _events(scenario, "drain_timeout_releasing") == []


def test_a_worker_killed_without_a_chance_to_clear_its_heartbeat_reads_unhealthy_at_once(
    scenario_factory: Any,
) -> None:
    # GIVEN a running worker whose heartbeat is fresh
    scenario = scenario_factory(latency_s=0.5, drain_timeout_s=3.0, events=2)
    health_file = Path(scenario.env.settings.health_file)
    wait_for(health_file.exists, timeout=30, what="the first heartbeat")
    cli = cli_env(None, health_file=str(health_file))
    assert run_cli("health", env=cli).returncode == 0

    # WHEN it is killed (OOM, SIGKILL): no exit path runs, the file stays
    scenario.worker.process.send_signal(signal.SIGKILL)
    scenario.worker.wait(timeout=10)
    assert health_file.exists()

    # THEN `secops health`, run where the worker ran, fails on the missing owner
    result = run_cli("health", env=cli)
    assert result.returncode == 1
    assert "is gone: the worker exited without clearing it" in result.stderr
