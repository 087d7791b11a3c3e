"""The chaos orchestrator: ``python -m chaos.run`` (``make chaos``).

1. moto's server starts in this process; queue + DLQ, topics, table are created, and
   an SQS "tap" queue is subscribed to each topic so every delivered notification can
   be read back;
2. ``--workers`` instrumented workers (:mod:`chaos.worker`) with faults consume the
   queue while the plan's messages are sent over the first two thirds of
   ``--duration`` (the clock starts once every worker is up, and sending pauses while
   the queue holds ``BACKLOG_CAP`` messages); at seeded random moments a worker is
   SIGKILLed and restarted, and once one gets SIGTERM and must exit 0 in time;
3. drain: as many fault-free workers start, the faulty ones get SIGTERM once those
   are up, and the run waits until the queue is empty with nothing in flight;
4. the store, the DLQ, the tap queues and the evidence files are read and the
   invariants checked (:mod:`chaos.invariants`).

Progress goes to stderr; the final table too, and the report as JSON on stdout. Exit
status 1 when an invariant fails, 2 on bad arguments. Everything a run wrote (worker
logs, evidence, the report) stays in ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from rich.console import Console
from rich.table import Table

from chaos.blocks import BlockWatch, check_blocks, worker_uptime
from chaos.blocks import worker_settings as block_settings
from chaos.evidence import read_evidence, read_evidence_of
from chaos.fleet import Fleet, WorkerProcess
from chaos.invariants import (
    Checker,
    Delivery,
    QueueMessage,
    RunData,
    SentMessage,
    delivery_from_envelope,
    epoch_of,
)
from chaos.plan import Plan, PlannedMessage, build_plan

console = Console(stderr=True)

# The plan's messages go out over this share of the chaos phase, re-sends until the next.
SEND_SHARE = 0.65
RESEND_SHARE = 0.85
# Kills and the SIGTERM land inside this share of the chaos phase.
KILL_WINDOW = (0.1, 0.9)
RESTART_AFTER_S = (0.5, 3.0)
# Worker timings: short, so a killed worker's leases and messages come back within the
# run; in the same proportions as the defaults (deadline < lease, heartbeat < visibility).
WAIT_TIME_S = 2
RUNTIME_READ_TIMEOUT_S = 1.5
DRAIN_TIMEOUT_S = 6.0
MONITOR_INTERVAL_S = 10  # the settings' minimum: several slots per run
MAX_RECEIVE_COUNT = 8
# A SIGTERMed worker's consumer must stop within the drain timeout plus the long poll
# it may be in; the process must be gone a few seconds later (interpreter teardown,
# which takes seconds on a starved CPU, inside ECS's 30 s stopTimeout for a 25 s drain).
STOP_GRACE_S = WAIT_TIME_S + 1.0
EXIT_GRACE_S = WAIT_TIME_S + 5.0
PROGRESS_EVERY_S = 10.0
# Messages waiting in the queue beyond which sending pauses (see ChaosRun._send_due).
BACKLOG_CAP = 30
BACKLOG_CHECK_S = 0.5
QUIET_POLLS = 3  # consecutive empty polls of the queue that make it drained

RESOURCES = {
    "queue": "chaos-waf-events",
    "dlq": "chaos-waf-events-dlq",
    "table": "chaos-secops-events",
    "critical": "chaos-secops-critical",
    "monitoring": "chaos-secops-monitoring",
}


@dataclass
class _ChaosState:
    pending: list[PlannedMessage]
    actions: list[tuple[float, str, str]]  # (at, "sigkill" | "sigterm", slot)
    restarts: list[tuple[float, str]] = field(default_factory=list)
    terminated: WorkerProcess | None = None
    backlog: int = 0
    backlog_checked_at: float = 0.0


@dataclass(frozen=True)
class RunConfig:
    seed: int
    events: int
    workers: int
    fault_rate: float
    duration_s: float
    kills: int
    sigterm: bool
    lease_s: int
    model_latency_s: float
    drain_limit_s: float
    out: Path


# ---- arguments ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chaos.run",
        description="Run several workers on one queue under injected faults and check the invariants.",
    )
    parser.add_argument("--seed", type=int, help="seed of every random choice (default: random, printed)")
    parser.add_argument(
        "--events", type=_positive(int), default=300, help="distinct valid events (default 300)"
    )
    parser.add_argument("--workers", type=_positive(int), default=3, help="worker processes (default 3)")
    parser.add_argument(
        "--fault-rate", type=_rate, default=0.05, help="probability of a fault per call (default 0.05)"
    )
    parser.add_argument(
        "--duration", type=_positive(float), default=75.0, help="chaos phase, seconds (default 75)"
    )
    parser.add_argument("--kills", type=int, help="SIGKILLs during the chaos phase (default: one per 15 s)")
    parser.add_argument("--no-sigterm", action="store_true", help="skip the SIGTERM drain check")
    parser.add_argument(
        "--lease-s", type=_positive(int), default=20, help="event lease, seconds (default 20)"
    )
    parser.add_argument(
        "--model-latency", type=float, default=0.05, help="scripted model latency (default 0.05 s)"
    )
    parser.add_argument(
        "--drain-limit",
        type=_positive(float),
        default=180.0,
        help="give up draining after this (default 180 s)",
    )
    parser.add_argument(
        "--out", type=Path, help="where logs, evidence and the report go (default: a temp dir)"
    )
    return parser


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value < 0.5:
        raise argparse.ArgumentTypeError(f"a rate in [0, 0.5), got {text}")
    return value


def config_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> RunConfig:
    if args.lease_s < 10:
        parser.error("--lease-s: at least 10 (the minimum of SECOPS_LEASE_S)")
    if args.kills is not None and args.kills < 0:
        parser.error("--kills: zero or more")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    out = args.out or Path(tempfile.mkdtemp(prefix=f"secops-chaos-{seed}-"))
    kills = args.kills if args.kills is not None else max(1, int(args.duration // 15))
    return RunConfig(
        seed=seed,
        events=args.events,
        workers=args.workers,
        fault_rate=args.fault_rate,
        duration_s=args.duration,
        kills=kills,
        sigterm=not args.no_sigterm,
        lease_s=args.lease_s,
        model_latency_s=args.model_latency,
        drain_limit_s=args.drain_limit,
        out=out,
    )


def worker_settings(config: RunConfig, resources: dict[str, str]) -> dict[str, str]:
    """The ``SECOPS_*`` environment of every worker."""
    visibility = max(10, config.lease_s - 5)
    return {
        "SECOPS_QUEUE_URL": resources["queue_url"],
        "SECOPS_TABLE_NAME": RESOURCES["table"],
        "SECOPS_CRITICAL_TOPIC_ARN": resources["critical_arn"],
        "SECOPS_MONITORING_TOPIC_ARN": resources["monitoring_arn"],
        "SECOPS_TRANSPORT": "inprocess",
        "SECOPS_CONCURRENCY": "4",
        "SECOPS_WAIT_TIME_S": str(WAIT_TIME_S),
        "SECOPS_VISIBILITY_TIMEOUT_S": str(visibility),
        "SECOPS_HEARTBEAT_INTERVAL_S": str(visibility / 4),
        "SECOPS_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S),
        "SECOPS_LEASE_S": str(config.lease_s),
        "SECOPS_RUNTIME_READ_TIMEOUT_S": str(RUNTIME_READ_TIMEOUT_S),
        "SECOPS_RUNTIME_RETRY_DEADLINE_S": str(round(config.lease_s * 0.3, 1)),
        "SECOPS_RUNTIME_MAX_ATTEMPTS": "3",
        "SECOPS_RETRY_BASE_DELAY_S": "1",
        # At least the lease: a message that meets a live lease comes back when it expires
        # (the consumer caps that delay at this value) instead of burning receives.
        "SECOPS_RETRY_MAX_DELAY_S": str(config.lease_s),
        "SECOPS_CIRCUIT_OPEN_S": "2",
        "SECOPS_CIRCUIT_FAILURE_THRESHOLD": "3",
        "SECOPS_NOTIFY_MAX_ATTEMPTS": "4",
        # A milestone claimed by a killed worker is taken over within the run (the
        # default, 300 s, outlasts it); still above a publish's retry budget here.
        "SECOPS_INCIDENT_CLAIM_STALE_S": str(max(10, config.lease_s)),
        "SECOPS_MONITOR_INTERVAL_S": str(MONITOR_INTERVAL_S),
        "SECOPS_MONITOR_HOURS": "1",
        "SECOPS_MONITOR_THRESHOLD": "5",
        "SECOPS_METRICS_ENABLED": "false",
        "SECOPS_LOG_FORMAT": "json",
        "SECOPS_LOG_LEVEL": "INFO",
    }


def aws_environment(endpoint: str) -> dict[str, str]:
    """Credentials moto accepts and nothing that could reach a real account."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SECOPS_"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "chaos",
            "AWS_SECRET_ACCESS_KEY": "chaos",  # moto accepts anything; nothing leaves the machine
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
    )
    return env


# ---- the run -------------------------------------------------------------------------------


class ChaosRun:
    def __init__(self, config: RunConfig, endpoint: str) -> None:
        from worker.daemon import Clients
        from worker.platform.resources import setup_resources
        from worker.settings import Settings
        from worker.store.dynamodb import EventStore

        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311 - a replayable plan, not crypto
        self.settings = Settings(
            queue_name=RESOURCES["queue"],
            dlq_name=RESOURCES["dlq"],
            table_name=RESOURCES["table"],
            critical_topic_name=RESOURCES["critical"],
            monitoring_topic_name=RESOURCES["monitoring"],
            max_receive_count=MAX_RECEIVE_COUNT,
            visibility_timeout_s=max(10, config.lease_s - 5),
            heartbeat_interval_s=max(10, config.lease_s - 5) / 4,
            wait_time_s=WAIT_TIME_S,
            aws_region="us-east-1",
        )
        self.clients = Clients.from_settings(self.settings)
        store = EventStore(self.settings.table_name, client=self.clients.dynamodb)
        self.resources, _ = setup_resources(
            self.settings, sqs=self.clients.sqs, sns=self.clients.sns, store=store
        )
        # Response actions on: the escalated sources go into this IP set (chaos/blocks.py).
        from worker.platform import aws

        self.blocks = BlockWatch.create(aws.client("wafv2", region="us-east-1"))
        self.taps = {
            "critical": self._tap(self.resources.critical_topic_arn, "chaos-critical-tap"),
            "monitoring": self._tap(self.resources.monitoring_topic_arn, "chaos-monitoring-tap"),
        }
        resources = {
            "queue_url": self.resources.queue_url,
            "critical_arn": self.resources.critical_topic_arn,
            "monitoring_arn": self.resources.monitoring_topic_arn,
        }
        for directory in ("evidence", "logs"):
            (config.out / directory).mkdir(parents=True, exist_ok=True)
        self.fleet = Fleet(
            env={
                **aws_environment(endpoint),
                **worker_settings(config, resources),
                **block_settings(self.blocks.ip_set),
            },
            evidence_dir=config.out / "evidence",
            logs_dir=config.out / "logs",
            fault_env={
                "CHAOS_FAULT_RATE": str(config.fault_rate),
                "CHAOS_MODEL_LATENCY_S": str(config.model_latency_s),
            },
        )
        self.plan: Plan = build_plan(
            self.rng,
            events=config.events,
            send_window_s=config.duration_s * SEND_SHARE,
            resend_window_s=config.duration_s * RESEND_SHARE,
        )
        self.sent: list[SentMessage] = []
        self.sigterm: dict[str, Any] | None = None
        self.t0 = time.time()

    def _tap(self, topic_arn: str, name: str) -> str:
        sqs = self.clients.sqs
        url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.clients.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
        return url

    def _seed(self) -> int:
        return self.rng.randrange(2**31)

    # ---- phase 1: chaos ------------------------------------------------------------------

    def chaos(self) -> None:
        config = self.config
        console.log(
            f"[bold]chaos[/] seed={config.seed} events={config.events} workers={config.workers} "
            f"fault_rate={config.fault_rate} duration={config.duration_s:.0f}s kills={config.kills}"
        )
        console.log(f"plan: {self.plan.counts()}; files in {config.out}")
        slots = [f"w{i}" for i in range(config.workers)]
        first = [self.fleet.start(slot, faults=True, seed=self._seed()) for slot in slots]
        # The clock starts once every worker is up: start-up is not chaos time.
        self._wait_started(first)
        state = _ChaosState(pending=list(self.plan.messages), actions=self._schedule(slots))
        start = time.monotonic()
        next_progress = PROGRESS_EVERY_S
        while (elapsed := time.monotonic() - start) < config.duration_s or state.pending or state.actions:
            self._send_due(state, elapsed)
            self.blocks.observe()
            self._act(state, elapsed)
            self._reap(state, elapsed)
            for when, slot in [r for r in state.restarts if r[0] <= elapsed]:
                state.restarts.remove((when, slot))
                if not any(p.slot == slot for p in self.fleet.live()):
                    self.fleet.start(slot, faults=True, seed=self._seed())
            if elapsed >= next_progress:
                next_progress += PROGRESS_EVERY_S
                self._progress(f"chaos {elapsed:5.0f}s")
            time.sleep(0.1)
        if state.terminated is not None:
            self.fleet.wait(state.terminated, self._sigterm_bound() + 15)
            self._record_sigterm(state.terminated)

    def _wait_started(self, processes: list[WorkerProcess], limit_s: float = 90.0) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not all(
            self.fleet.started(p) or not p.alive for p in processes
        ):
            self.fleet.reap()
            time.sleep(0.2)

    def _send_due(self, state: _ChaosState, elapsed: float) -> None:
        """Send what the plan has due, keeping the visible backlog under ``BACKLOG_CAP``.

        moto's ReceiveMessage costs time in proportion to the messages waiting (about
        0.35 ms each per call), so a deep queue would measure moto, not the worker.
        """
        due = sum(1 for m in state.pending if m.at_s <= elapsed)
        if not due:
            return
        if time.monotonic() >= state.backlog_checked_at + BACKLOG_CHECK_S:
            state.backlog = self._queue_counts(self.resources.queue_url)[0]
            state.backlog_checked_at = time.monotonic()
        room = min(due, BACKLOG_CAP - state.backlog)
        if room > 0:
            batch, state.pending = state.pending[:room], state.pending[room:]
            self._send(batch)
            state.backlog += room

    def _act(self, state: _ChaosState, elapsed: float) -> None:
        """Carry out the kills and the SIGTERM that are due."""
        while state.actions and state.actions[0][0] <= elapsed:
            _, kind, slot = state.actions.pop(0)
            target = self._target(slot, kind, exclude=state.terminated)
            if target is None:
                # Every worker is restarting: try again in a second.
                state.actions.append((elapsed + 1.0, kind, slot))
                state.actions.sort()
                continue
            if kind == "sigkill":
                self.fleet.kill(target)
                state.restarts.append((elapsed + self.rng.uniform(*RESTART_AFTER_S), target.slot))
            else:
                self.fleet.terminate(target)
                state.terminated = target
            console.log(f"{kind.upper()} {target.name} (pid {target.pid}) at {elapsed:.1f}s")

    def _reap(self, state: _ChaosState, elapsed: float) -> None:
        """Note exits, and restart whatever ended (the SIGTERMed worker once it is out)."""
        for process in self.fleet.reap():
            if process is state.terminated:
                self._record_sigterm(process)
                state.restarts.append((elapsed, process.slot))
                state.terminated = None
            elif process.signalled is None:
                console.log(f"[red]{process.name} exited by itself with {process.exit_code}[/]")
                state.restarts.append((elapsed + 1.0, process.slot))
        stuck = state.terminated
        if stuck is not None and time.time() - (stuck.signalled_at or 0) > self._sigterm_bound() + 15:
            console.log(f"[red]{stuck.name} ignored SIGTERM; killing it[/]")
            self.fleet.kill(stuck)
            self.fleet.wait(stuck, 10)
            self._record_sigterm(stuck)
            state.restarts.append((elapsed, stuck.slot))
            state.terminated = None

    def _schedule(self, slots: list[str]) -> list[tuple[float, str, str]]:
        low, high = (self.config.duration_s * f for f in KILL_WINDOW)
        # One kill at a random moment of each equal segment: random, yet never all at once.
        segment = (high - low) / max(1, self.config.kills)
        actions = [
            (low + segment * i + self.rng.uniform(0, segment), "sigkill", self.rng.choice(slots))
            for i in range(self.config.kills)
        ]
        if self.config.sigterm:
            # While messages still arrive, so the drained worker has work in flight.
            sigterm_high = max(low, self.config.duration_s * SEND_SHARE)
            actions.append((self.rng.uniform(low, sigterm_high), "sigterm", self.rng.choice(slots)))
        return sorted(actions)

    def _target(self, slot: str, kind: str, *, exclude: WorkerProcess | None) -> WorkerProcess | None:
        """The live worker of ``slot`` (another one if it is restarting).

        SIGTERM goes to the worker that has run longest, so it has work in flight.
        """
        live = [p for p in self.fleet.live(faults=True) if p is not exclude and self.fleet.started(p)]
        if kind == "sigterm" and live:
            return min(live, key=lambda p: p.started_at)
        return next((p for p in live if p.slot == slot), live[0] if live else None)

    def _sigterm_bound(self) -> float:
        return DRAIN_TIMEOUT_S + EXIT_GRACE_S

    def _record_sigterm(self, process: WorkerProcess) -> None:
        signalled = process.signalled_at or 0.0
        exited = (process.ended_at or time.time()) - signalled
        records = read_evidence_of(self.fleet.evidence_dir, process.name)

        def after(kind: str) -> float | None:
            times = [r["t"] for r in records if r["kind"] == kind]
            return round(times[0] - signalled, 2) if times else None

        returned = after("worker_stopped")
        self.sigterm = {
            "worker": process.name,
            "exit_code": process.exit_code,
            "consumer_stopped_after_s": self._consumer_stopped(process, signalled),
            "run_worker_returned_after_s": returned,
            "stop_bound_s": DRAIN_TIMEOUT_S + STOP_GRACE_S,
            "interpreter_exiting_after_s": after("interpreter_exiting"),
            "exited_after_s": round(exited, 2),
            "exit_bound_s": self._sigterm_bound(),
            "killed_after_timeout": process.signalled == "SIGKILL",
        }
        console.log(
            f"{process.name}: run_worker returned {returned}s and the process exited "
            f"{process.exit_code} {exited:.1f}s after SIGTERM"
        )

    def _consumer_stopped(self, process: WorkerProcess, signalled: float) -> float | None:
        """When the consumer logged ``consumer_stopped``, from the worker's own log."""
        path = self.fleet.logs_dir / f"{process.name}.log"
        for line in path.read_text(errors="replace").splitlines():
            if '"consumer_stopped"' in line:
                with contextlib.suppress(ValueError, KeyError):
                    return round(epoch_of(json.loads(line)["timestamp"]) - signalled, 2)
        return None

    def _send(self, messages: list[PlannedMessage]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries = [{"Id": str(i), "MessageBody": m.body} for i, m in enumerate(chunk)]
            while entries:
                response = self.clients.sqs.send_message_batch(
                    QueueUrl=self.resources.queue_url, Entries=entries
                )
                now = time.time()
                for ok in response.get("Successful", []):
                    self.sent.append(SentMessage(chunk[int(ok["Id"])], ok["MessageId"], now))
                failed = {f["Id"] for f in response.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]

    def _queue_counts(self, url: str) -> tuple[int, int, int]:
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            int(attributes["ApproximateNumberOfMessagesDelayed"]),
        )

    def _progress(self, phase: str) -> tuple[int, int, int]:
        visible, hidden, delayed = self._queue_counts(self.resources.queue_url)
        dlq = sum(self._queue_counts(str(self.resources.dlq_url)))
        kills = sum(1 for e in self.fleet.timeline if e["event"] == "sigkill")
        console.log(
            f"{phase}: sent {len(self.sent)}/{len(self.plan.messages)}, queue {visible} visible "
            f"{hidden} in flight {delayed} delayed, dlq {dlq}, kills {kills}, live {len(self.fleet.live())}"
        )
        return visible, hidden, delayed

    # ---- phase 2: drain ------------------------------------------------------------------

    def drain(self) -> tuple[bool, bool]:
        """Fault-free workers take over until nothing is left to do; (drained, monitor settled).

        Drained: the queue is empty with nothing in flight or delayed. Settled: then one
        monitor slot, taken by a fault-free worker after that, ran to completion, so
        every pattern a faulty slot left half-applied had its chance to finish.
        """
        console.log("[bold]drain[/]: fault-free workers take over")
        drainers = [self.fleet.start(f"d{i}", faults=False, seed=0) for i in range(self.config.workers)]
        handed_over = False
        start = time.monotonic()
        quiet = 0
        quiet_since: float | None = None
        settled = False
        self.blocks_settled = False
        next_progress = 0.0
        while time.monotonic() - start < self.config.drain_limit_s and not (settled and self.blocks_settled):
            self.fleet.reap()
            self.blocks.observe()
            if not handed_over and all(self.fleet.started(p) or not p.alive for p in drainers):
                # The faulty workers keep consuming until the fault-free ones are up.
                for process in self.fleet.live(faults=True):
                    self.fleet.terminate(process)
                handed_over = True
            for slot in [p.slot for p in drainers if not p.alive and p.signalled is None]:
                if not any(q.slot == slot and q.alive for q in self.fleet.processes):
                    console.log(f"[red]drain worker {slot} exited; restarting[/]")
                    drainers.append(self.fleet.start(slot, faults=False, seed=0))
            quiet = quiet + 1 if sum(self._queue_counts(self.resources.queue_url)) == 0 else 0
            if quiet >= QUIET_POLLS and handed_over and not self.fleet.live(faults=True):
                if quiet_since is None:
                    quiet_since = time.time()
                    console.log("queue drained; waiting for one fault-free monitor slot")
                settled = settled or self._slot_completed_since(quiet_since)
                # Every block expires within the run: the drain waits for the last one
                # to be taken out, so its expiry is checked too.
                self.blocks_settled = settled and self.blocks.in_force(self._scan) == 0
            else:
                quiet_since = None
            if time.monotonic() - start >= next_progress:
                next_progress += PROGRESS_EVERY_S
                self._progress(f"drain {time.monotonic() - start:5.0f}s")
            time.sleep(1.0)
        drained = quiet >= QUIET_POLLS
        self.blocks.observe(force=True)
        elapsed = time.monotonic() - start
        console.log(
            f"drain {'complete' if drained else '[red]INCOMPLETE[/]'}, monitor "
            f"{'settled' if settled else '[red]NOT settled[/]'} after {elapsed:.0f}s"
        )
        self.fleet.stop_all(self._sigterm_bound() + 15)
        return drained, settled

    def _slot_completed_since(self, since: float) -> bool:
        """True once a fault-free worker completed a monitor slot it took after ``since``."""
        records = read_evidence(self.fleet.evidence_dir)
        acquired = {
            r["lock"]
            for r in records
            if r["kind"] == "lock_acquired" and r["t"] >= since and r["proc"][0] == "d"
        }
        return any(r["kind"] == "lock_completed" and r["lock"] in acquired for r in records)

    # ---- phase 3: collect and check ------------------------------------------------------

    def collect(self, drained: bool, settled: bool) -> RunData:
        items = self._scan()
        dlq = [
            QueueMessage(
                m["MessageId"], m.get("Body", ""), int(m["Attributes"].get("ApproximateReceiveCount", 0))
            )
            for m in self._read_all(str(self.resources.dlq_url))
        ]
        left = sum(self._queue_counts(self.resources.queue_url))
        evidence = read_evidence(self.config.out / "evidence")
        up, stops = worker_uptime(self.fleet.timeline, evidence)
        blocks = check_blocks(
            items,
            self.blocks.observations,
            ip_set_id=self.blocks.ip_set.id,
            settled=self.blocks_settled,
            up=up,
            stops=stops,
        )
        return RunData(
            plan=self.plan,
            sent=self.sent,
            items=items,
            dlq=dlq,
            left_in_queue=left,
            critical=self._deliveries("critical"),
            monitoring=self._deliveries("monitoring"),
            evidence=read_evidence(self.config.out / "evidence"),
            timeline=self.fleet.timeline,
            sigterm=self.sigterm,
            drained=drained,
            monitor_settled=settled,
            t0=self.t0,
            extra={"blocks": blocks},
        )

    def log_errors(self) -> dict[str, Any]:
        """Error lines of every worker log, by event, with where the first few came from."""
        counts: dict[str, int] = {}
        examples: list[dict[str, Any]] = []
        for path in sorted((self.config.out / "logs").glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if not line.startswith("{"):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") not in ("error", "critical"):
                    continue
                event = str(entry.get("event"))
                counts[event] = counts.get(event, 0) + 1
                if len(examples) < 5 and "exception" in entry:
                    frames = [
                        f.strip() for f in entry["exception"].splitlines() if "/work/" in f or "worker/" in f
                    ]
                    examples.append(
                        {
                            "process": path.stem,
                            "event": event,
                            "at": entry.get("timestamp"),
                            "error": entry["exception"].strip().splitlines()[-1][:300],
                            "worker_frames": [f for f in frames if "/site-packages/" not in f][-3:],
                        }
                    )
        return {"by_event": dict(sorted(counts.items())), "examples": examples}

    def _scan(self) -> dict[str, dict[str, Any]]:
        deserializer = TypeDeserializer()
        items: dict[str, dict[str, Any]] = {}
        for page in self.clients.dynamodb.get_paginator("scan").paginate(TableName=RESOURCES["table"]):
            for raw in page.get("Items", []):
                item = {k: _plain(deserializer.deserialize(v)) for k, v in raw.items()}
                items[str(item["pk"])] = item
        return items

    def _read_all(self, url: str) -> list[dict[str, Any]]:
        """Every message of a queue (they stay hidden for ten minutes, long after the run)."""
        out: list[dict[str, Any]] = []
        empty = 0
        while empty < 2:
            batch = self.clients.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=600,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            empty = 0 if batch else empty + 1
            out.extend(batch)
        return out

    def _deliveries(self, topic: str) -> list[Delivery]:
        return [delivery_from_envelope(json.loads(m["Body"])) for m in self._read_all(self.taps[topic])]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return value


class MotoRaceFilter(logging.Filter):
    """Counts and silences moto's SQS thread-safety failures.

    moto's SQS backend iterates and mutates a queue's messages without a lock, so two
    concurrent ReceiveMessage calls can collide while one moves a message to the DLQ
    (``list.remove(x): x not in list``, ``Set changed size during iteration``). The
    caller gets a 500 and the worker polls again; the tracebacks would bury the
    progress lines, so they are counted into the report instead.
    """

    _SIGNS = ("x not in list", "changed size during iteration")

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "moto/sqs/" in message and any(sign in message for sign in self._SIGNS):
            self.count += 1
            return False
        return True


# ---- output --------------------------------------------------------------------------------


def summary_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"chaos run, seed {report['seed']}", show_lines=False)
    table.add_column("invariant")
    table.add_column("value", justify="right")
    table.add_column("ok")
    for name, result in report["invariants"].items():
        value = result["value"]
        if isinstance(value, dict):  # the SIGTERM drain
            value = (
                f"exit {value.get('exit_code')}, stopped {value.get('run_worker_returned_after_s')} s, "
                f"gone {value.get('exited_after_s')} s"
            )
        table.add_row(name, str(value), "[green]yes[/]" if result["ok"] else "[red]NO[/]")
    figures = (
        ("messages sent", report["events"]["messages_sent"]),
        ("distinct valid events", report["events"]["distinct_valid_events"]),
        ("terminal", report["terminal"]),
        ("in the DLQ", f"{report['dlq']['messages']} {report['dlq']['by_reason']}"),
        ("lost", report["lost"]),
        ("model calls (analyze)", report["model_calls"]["analyze_calls"]),
        ("critical notifications", report["notifications"]["critical_delivered"]),
        ("incidents", report["notifications"]["incidents"]),
        (
            "openings lost in claim/publish window",
            report["notifications"]["openings_lost_in_claim_publish_window"],
        ),
        ("monitor runs / slots", f"{report['monitor']['runs']} / {report['monitor']['slots']}"),
        (
            "monitor slots completed under faults",
            slot_figure(report["monitor"]["slots_completed_under_faults"]),
        ),
        ("SIGKILLs", report["processes"]["sigkills"]),
        ("faults injected", sum(report["faults_injected"].values())),
    )
    for name, value in figures:
        table.add_row(f"[dim]{name}[/]", str(value), "")
    return table


def slot_figure(slots: dict[str, Any]) -> str:
    """E.g. "6 / 10 (60%); holders killed 3, shut down 1; 100% of the rest, target 90%"."""
    verdict = "" if slots["met"] else " [red]missed[/]"
    return (
        f"{slots['completed']} / {slots['total']} ({slots['share']:.0%}); holders killed "
        f"{slots['open_holder_killed']}, shut down {slots['open_holder_shut_down']}; "
        f"{slots['share_holder_lived']:.0%} of the rest, target {slots['target']:.0%}{verdict}"
    )


def run(config: RunConfig) -> dict[str, Any]:
    from secops_core.logs import configure_logging
    from worker.embedded.moto import embedded_aws

    # The orchestrator's own structlog lines (resource set-up) stay off stdout, which
    # carries only the report.
    configure_logging("WARNING", "console")

    started = time.time()
    os.environ.update({k: v for k, v in aws_environment("").items() if k.startswith("AWS_")})
    # The run defines every setting itself; a developer's SECOPS_* must not leak in.
    for name in [n for n in os.environ if n.startswith("SECOPS_")] + ["AWS_PROFILE", "AWS_SESSION_TOKEN"]:
        os.environ.pop(name, None)
    races = MotoRaceFilter()
    with embedded_aws() as endpoint:
        logging.getLogger("werkzeug").addFilter(races)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        chaos = ChaosRun(config, endpoint)
        try:
            chaos.chaos()
            drained, settled = chaos.drain()
        finally:
            chaos.fleet.stop_all(10)
        console.log("checking invariants")
        data = chaos.collect(drained, settled)
    report = {"seed": config.seed, "config": {k: str(v) for k, v in asdict(config).items()}}
    report |= Checker(data).report()
    timeline = chaos.fleet.timeline
    report["processes"] = {
        "started": sum(1 for e in timeline if e["event"] == "start"),
        "sigkills": sum(1 for e in timeline if e["event"] == "sigkill"),
        "sigterms": sum(1 for e in timeline if e["event"] == "sigterm"),
        "exits_after_sigterm": [
            {
                "proc": p.name,
                "code": p.exit_code,
                "after_s": round((p.ended_at or 0) - (p.signalled_at or 0), 2),
            }
            for p in chaos.fleet.processes
            if p.signalled == "SIGTERM"
        ],
        "sigterm_drain": chaos.sigterm,
    }
    report["worker_log_errors"] = chaos.log_errors()
    report["cpu_s"] = {
        # moto's server runs in this process: most of this is the emulator.
        "orchestrator_with_moto": round(time.process_time(), 1),
        "workers_that_exited": round(
            sum(r.get("cpu_s", 0) for r in data.evidence if r["kind"] == "worker_stopped"), 1
        ),
    }
    report["moto_sqs_thread_races"] = races.count
    report["elapsed_s"] = round(time.time() - started, 1)
    (config.out / "timeline.json").write_text(json.dumps(timeline, indent=1))
    (config.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--scenario" or a.startswith("--scenario=") for a in raw):
        from chaos import s3  # WAF log files from S3: scenario modules of their own

        return s3.dispatch(raw)
    parser = build_parser()
    config = config_from(parser.parse_args(argv), parser)
    report = run(config)
    console.print(summary_table(report))
    console.log(
        f"{'[green]all invariants hold[/]' if report['ok'] else '[red]invariants FAILED[/]'} "
        f"in {report['elapsed_s']}s; replay with --seed {config.seed}; files in {config.out}"
    )
    sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
