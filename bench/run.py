"""Throughput benchmark of the worker: ``python -m bench.run`` (``make bench``).

The real worker (consumer, store, notifier, in-process transport to the real
``AgentService``) consumes a queue on moto's server while a producer keeps a bounded
backlog in it; moto and the producer run in child processes so that the worker's CPU
is measured alone. The model is the scripted Strands provider, sleeping
``--latency-ms`` per call to stand in for Nova Lite; a second scenario with no model
latency shows the worker's own overhead.

For each concurrency: events per second, the ideal (concurrency / model latency), the
efficiency, CPU per event of the worker and of the emulator, enqueue-to-terminal and
receive-to-terminal latency percentiles, and AWS API requests per event by operation
(counted with botocore's ``before-send`` hook, one per HTTP request, retries included).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console, JustifyMethod
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.config import BenchConfig, Driven
from bench.emulator import EmulatorProcess, ProducerProcess, helper_processes
from bench.events import BenchEvent, FloodMix, expected_statuses, generate
from bench.flood import FloodConfig, flood_summary, run_flood
from bench.results import DEFAULT_OUTPUT, write_run

DEFAULT_PLOT = "bench/efficiency.png"
# The model "answers" severity 0, so the deterministic floor decides and the mix of
# closed / monitoring / escalated is the one the generator expects.
ASSESSMENT = {
    "severity_rating": 0,
    "security_analysis": "Scripted analysis for the benchmark.",
    "follow_up_suggestion": "None.",
    "attack_type": "scripted",
}
TERMINAL_KINDS = frozenset({"done", "duplicate"})
# The DynamoDB operations that write (the store and the incidents use the first three;
# a batch or a transaction would count once per request here, not per item).
DYNAMODB_WRITES = frozenset(
    {
        "dynamodb.PutItem",
        "dynamodb.UpdateItem",
        "dynamodb.DeleteItem",
        "dynamodb.BatchWriteItem",
        "dynamodb.TransactWriteItems",
    }
)
# Bottleneck labels (see ``bottleneck``). One Python process runs Python code on one
# core at a time (the GIL), so moto and the worker each saturate at about 1.0 core.
EFFICIENT = 0.80
PROCESS_SATURATED = 0.75
MACHINE_SATURATED = 0.85


@dataclass
class _Tap:
    """What the botocore hooks and the outcome callback see during one point."""

    expected: int
    body_keys: dict[str, str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Counter[str] = field(default_factory=Counter)
    sent_at: dict[str, float] = field(default_factory=dict)  # key -> SentTimestamp (s)
    received_at: dict[str, float] = field(default_factory=dict)  # key -> first receive (s)
    terminal_at: dict[str, float] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    done: threading.Event = field(default_factory=threading.Event)
    last_terminal: float = 0.0

    def on_send(self, event_name: str, **_: Any) -> None:
        # before-send.<service>.<Operation>: one per HTTP request, retries included.
        _, service, operation = event_name.split(".", 2)
        with self.lock:
            self.requests[f"{service}.{operation}"] += 1

    def on_receive(self, parsed: dict[str, Any], **_: Any) -> None:
        now = time.time()
        with self.lock:
            for message in parsed.get("Messages", []):
                key = self.body_keys.get(message.get("Body", ""))
                if key is None:
                    continue
                self.received_at.setdefault(key, now)
                sent = message.get("Attributes", {}).get("SentTimestamp")
                if sent is not None:
                    self.sent_at.setdefault(key, int(sent) / 1000)

    def on_outcome(self, outcome: Any) -> None:
        now = time.time()
        with self.lock:
            self.outcomes[outcome.kind] += 1
            if (
                outcome.kind in TERMINAL_KINDS
                and outcome.event_key
                and outcome.event_key not in self.terminal_at
            ):
                self.terminal_at[outcome.event_key] = now
                self.last_terminal = now
                if len(self.terminal_at) >= self.expected:
                    self.done.set()


# ---- figures ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _latency_ms(samples: list[float]) -> dict[str, float | None]:
    millis = [s * 1000 for s in samples]

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "p50": rounded(percentile(millis, 50)),
        "p95": rounded(percentile(millis, 95)),
        "p99": rounded(percentile(millis, 99)),
        "max": rounded(max(millis) if millis else None),
        "samples": len(millis),
    }


def bottleneck(point: dict[str, Any], cores: int) -> tuple[str, str]:
    """A label for what limits a point, and the figures that say so.

    In order: the model latency when the worker gets within 80 % of the ideal; the
    emulator or the worker when that process is busy 75 % of the window or more (each is
    one Python process, held to about one core by the GIL); the machine when all cores
    are busy (other tenants included); otherwise waits that no CPU explains (round trips
    done one after another, batching delays).
    """
    efficiency = point["efficiency"]
    worker = point["worker_cores_busy"]
    moto = point["emulator_cores_busy"]
    machine_busy = point["machine_cores_busy"]
    figures = (
        f"worker {worker:.2f} cores, emulator {moto:.2f} cores, machine {machine_busy:.2f} of {cores}"
        + (f", efficiency {efficiency:.2f}" if efficiency is not None else "")
    )
    if efficiency is not None and efficiency >= EFFICIENT:
        return "model latency", figures
    if moto >= PROCESS_SATURATED and moto >= worker:
        return "emulator CPU", figures
    if worker >= PROCESS_SATURATED:
        return "worker CPU", figures
    if machine_busy >= MACHINE_SATURATED * cores:
        return "machine CPU", figures
    return "waits", figures


def _cpu_ticks() -> tuple[int, int, int] | None:
    """Machine-wide (busy, steal, total) jiffies from /proc/stat, or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]
    steal = values[7] if len(values) > 7 else 0
    return sum(values) - idle, steal, sum(values)


# ---- one sweep point -------------------------------------------------------------------------


@contextmanager
def _aws_env(endpoint: str) -> Iterator[None]:
    """Point every boto3 client at the emulator; restore the environment afterwards."""
    names = (
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    )
    dropped = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE")
    saved = {name: os.environ.get(name) for name in (*names, *dropped)}
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",  # moto accepts anything; nothing leaves the machine
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    for name in dropped:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _settings(unique: str, concurrency: int, health_dir: str, **overrides: Any) -> Any:
    from worker.settings import Settings

    return Settings(
        queue_name=f"bench-{unique}",
        dlq_name=f"bench-dlq-{unique}",
        table_name=f"bench-{unique}",
        critical_topic_name=f"bench-critical-{unique}",
        monitoring_topic_name=f"bench-monitoring-{unique}",
        aws_region="us-east-1",
        transport="inprocess",
        concurrency=concurrency,
        wait_time_s=1,
        exit_when_idle_polls=2,
        visibility_timeout_s=60,
        heartbeat_interval_s=20,
        metrics_enabled=False,
        monitor_enabled=False,
        health_file=str(Path(health_dir) / f"health-{unique}"),
        log_level="WARNING",
        log_format="json",
        **overrides,
    )


def _subscribe_tap(clients: Any, topic_arn: str, name: str) -> str:
    """An SQS queue subscribed to the critical topic: proof SNS delivered each escalation."""
    url = str(clients.sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    clients.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def _drain_count(sqs: Any, url: str) -> int:
    count = 0
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not batch:
            return count
        count += len(batch)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def backlog_window(concurrency: int) -> int:
    """Messages sent but not yet terminal: the ``concurrency`` in flight, plus the next batch.

    The consumer asks for at most ``min(10, free slots)`` messages, so that many visible
    messages (and 2 for the producer's 50 ms top-up delay) keep it from ever finding the
    queue empty. Any deeper backlog would only add queueing time to the enqueue-to-
    terminal latency (by Little's law, about window / throughput) and depth to moto's
    per-receive cost, which grows with the queue.
    """
    return concurrency + min(concurrency, 10) + 2


@dataclass(frozen=True)
class _Clocks:
    """Every clock the figures of a point come from, read at one moment."""

    wall: float
    worker_cpu: float
    emulator_cpu: float
    ticks: tuple[int, int, int] | None

    @classmethod
    def read(cls, emulator: EmulatorProcess) -> _Clocks:
        return cls(time.time(), time.process_time(), emulator.cpu_s(), _cpu_ticks())


@dataclass(frozen=True)
class _Run:
    """What one point's run left behind, before it is turned into figures."""

    concurrency: int
    latency_ms: float
    events: Sequence[BenchEvent]
    window: int
    sent: int
    producer_cpu_s: float
    finished: bool
    start: _Clocks
    end: _Clocks
    model_calls: int
    statuses: dict[str, int]
    notified: int
    delivered: int
    lost: int
    incidents: int


def _run_in_thread(target: Callable[[], object], *, stop: Callable[[], None]) -> None:
    """Run ``target`` in a thread and wait for it; Ctrl-C calls ``stop`` and re-raises.

    ``run_worker`` takes over SIGINT and SIGTERM when it runs in the main thread (to
    drain gracefully); here the benchmark keeps them, so Ctrl-C ends the whole sweep.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="bench-worker")
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        stop()
        thread.join()
        raise
    if errors:
        raise errors[0]


def run_point(
    emulator: EmulatorProcess,
    producer: ProducerProcess,
    config: BenchConfig,
    *,
    latency_ms: float,
    concurrency: int,
    events: Sequence[BenchEvent],
    health_dir: str,
    progress: Progress | None = None,
    task: TaskID | None = None,
) -> dict[str, Any]:
    """Consume ``events`` with one worker at ``concurrency``; return the figures of the point."""
    return drive(
        emulator,
        producer,
        config,
        latency_ms=latency_ms,
        concurrency=concurrency,
        events=events,
        health_dir=health_dir,
        progress=progress,
        task=task,
    ).point


def drive(
    emulator: EmulatorProcess,
    producer: ProducerProcess,
    config: BenchConfig,
    *,
    latency_ms: float,
    concurrency: int,
    events: Sequence[BenchEvent],
    health_dir: str,
    progress: Progress | None = None,
    task: TaskID | None = None,
    model: Any = None,
    overrides: Mapping[str, Any] | None = None,
) -> Driven:
    """Consume ``events`` with one worker at ``concurrency`` (``model`` answering, by
    default the scripted one; ``overrides`` on the settings); the point and its records.
    """
    from agent_runtime.service import build_service
    from testkit.scripted_model import ScriptedModel
    from worker.agents import Agents
    from worker.agents.inprocess import InProcessTransport
    from worker.daemon import Clients, build_worker, run_worker
    from worker.incidents.dynamodb import DynamoIncidentRepo
    from worker.platform.metrics import Metrics
    from worker.platform.resources import setup_resources
    from worker.store.dynamodb import EventStore

    unique = f"{int(latency_ms)}ms-c{concurrency}-{uuid.uuid4().hex[:6]}"
    settings = _settings(unique, concurrency, health_dir, **(overrides or {}))

    # Set-up through clients of its own: not counted, not timed.
    admin = Clients.from_settings(settings)
    admin_store = EventStore(settings.table_name, client=admin.dynamodb)
    resources, _ = setup_resources(settings, sqs=admin.sqs, sns=admin.sns, store=admin_store)
    tap_url = _subscribe_tap(admin, resources.critical_topic_arn, f"bench-tap-{unique}")

    tap = _Tap(expected=len(events), body_keys={e.body: e.key for e in events})
    clients = Clients.from_settings(settings)
    # Every client the worker builds its adapters from (store, incidents, notifier, queue).
    for client in (clients.sqs, clients.sns, clients.dynamodb):
        client.meta.events.register("before-send", tap.on_send)
    clients.sqs.meta.events.register("after-call.sqs.ReceiveMessage", tap.on_receive)

    model = model or ScriptedModel([ASSESSMENT], latency_s=latency_ms / 1000, cycle=True)
    agents = Agents.from_settings(settings, runtime=InProcessTransport(build_service(settings, model=model)))
    worker = build_worker(
        settings, clients=clients, resources=resources, agents=agents, metrics=Metrics(enabled=False)
    )

    def on_outcome(outcome: Any) -> None:
        tap.on_outcome(outcome)
        if outcome.kind in TERMINAL_KINDS:
            producer.consume()
            if progress is not None and task is not None:
                progress.advance(task)

    worker.consumer.on_outcome = on_outcome
    ends: list[tuple[_Clocks, bool]] = []

    def watch() -> None:
        # When the last event is terminal: read the clocks, then stop the worker instead
        # of waiting out its idle polls (they would only add idle time).
        finished = tap.done.wait(config.point_timeout_s)
        ends.append((_Clocks.read(emulator), finished))
        worker.consumer.stop()

    window = backlog_window(concurrency)
    producer.feed(emulator.endpoint, resources.queue_url, [e.body for e in events], window)
    start = _Clocks.read(emulator)
    watcher = threading.Thread(target=watch, name="bench-watch", daemon=True)
    watcher.start()
    _run_in_thread(lambda: run_worker(worker, with_scheduler=False), stop=worker.consumer.stop)
    tap.done.set()  # the worker exited on its own (idle or stopped): release the watcher
    watcher.join()
    if len(tap.terminal_at) < len(events):
        producer.abort()
    sent, producer_cpu_s = producer.wait()

    # Read back what the store and SNS recorded (outside the measured window).
    records = admin_store.get_many([e.key for e in events])
    incidents = DynamoIncidentRepo(
        settings.table_name, client=admin.dynamodb, quiet_s=settings.incident_quiet_s
    ).list(limit=100_000)
    end, finished = ends[0]
    run = _Run(
        concurrency=concurrency,
        latency_ms=latency_ms,
        events=events,
        window=window,
        sent=sent,
        producer_cpu_s=producer_cpu_s,
        finished=finished,
        start=start,
        end=end,
        model_calls=model.calls,
        statuses=dict(Counter(r.status for r in records.values())),
        notified=sum(1 for r in records.values() if r.status == "escalated" and r.notified_at),
        delivered=_drain_count(admin.sqs, tap_url),
        lost=sum(1 for e in events if e.key not in records or not records[e.key].is_terminal),
        incidents=len(incidents),
    )
    return Driven(figures(run, tap), records, incidents)


def _per_event(counts: dict[str, int], events: int) -> dict[str, dict[str, float]]:
    return {name: {"count": c, "per_event": round(c / events, 3)} for name, c in sorted(counts.items())}


def _ceilings(
    worker_cpu_s: float, emulator_cpu_s: float, producer_cpu_s: float, events: int, cores: int
) -> dict[str, float | None]:
    def rate(cpu_s: float, capacity: float) -> float | None:
        return round(capacity * events / cpu_s, 1) if cpu_s > 0 else None

    return {
        "worker_one_core": rate(worker_cpu_s, 1),
        "emulator_one_core": rate(emulator_cpu_s, 1),
        "machine": rate(worker_cpu_s + emulator_cpu_s + producer_cpu_s, cores),
    }


def figures(run: _Run, tap: _Tap) -> dict[str, Any]:
    """The figures of one point (what the JSON holds for it)."""
    terminal = len(tap.terminal_at)
    per_event = max(terminal, 1)
    drain_s = max((tap.last_terminal or run.end.wall) - run.start.wall, 1e-9)
    window_s = max(run.end.wall - run.start.wall, 1e-9)
    worker_cpu_s = run.end.worker_cpu - run.start.worker_cpu
    emulator_cpu_s = run.end.emulator_cpu - run.start.emulator_cpu
    events_per_s = terminal / drain_s
    ideal = run.concurrency / (run.latency_ms / 1000) if run.latency_ms > 0 else None
    cores = os.cpu_count() or 1
    machine_busy, steal = 0.0, 0.0
    if run.start.ticks and run.end.ticks and run.end.ticks[2] > run.start.ticks[2]:
        total = run.end.ticks[2] - run.start.ticks[2]
        machine_busy = round(cores * (run.end.ticks[0] - run.start.ticks[0]) / total, 3)
        steal = round((run.end.ticks[1] - run.start.ticks[1]) / total, 3)
    requests = dict(tap.requests)
    by_service: Counter[str] = Counter()
    for name, count in requests.items():
        by_service[name.split(".", 1)[0]] += count
    point: dict[str, Any] = {
        "concurrency": run.concurrency,
        "model_latency_ms": run.latency_ms,
        "events": len(run.events),
        "sent": run.sent,
        "backlog_window": run.window,
        "terminal": terminal,
        "finished": run.finished and terminal == len(run.events),
        "outcomes": dict(tap.outcomes),
        "expected_statuses": expected_statuses(list(run.events)),
        "statuses": run.statuses,
        "escalations_notified": run.notified,
        "notifications_delivered": run.delivered,
        "model_calls": run.model_calls,
        # The figures every scenario records (issue 13), per event where it says so.
        "model_calls_per_event": round(run.model_calls / per_event, 4),
        "notifications_critical": run.delivered,
        "incidents": run.incidents,
        "dynamodb_writes_per_event": round(
            sum(n for op, n in requests.items() if op in DYNAMODB_WRITES) / per_event, 3
        ),
        "aws_requests_per_event": round(sum(requests.values()) / per_event, 3),
        "lost": run.lost,
        "drain_s": round(drain_s, 3),
        "events_per_s": round(events_per_s, 2),
        "ideal_events_per_s": None if ideal is None else round(ideal, 2),
        "efficiency": None if ideal is None else round(events_per_s / ideal, 4),
        "worker_cpu_s": round(worker_cpu_s, 3),
        "worker_cpu_ms_per_event": round(worker_cpu_s * 1000 / per_event, 2),
        "worker_cores_busy": round(worker_cpu_s / window_s, 3),
        "emulator_cpu_s": round(emulator_cpu_s, 3),
        "emulator_cpu_ms_per_event": round(emulator_cpu_s * 1000 / per_event, 2),
        "emulator_cores_busy": round(emulator_cpu_s / window_s, 3),
        "emulator_cpu_share": round(emulator_cpu_s / max(worker_cpu_s + emulator_cpu_s, 1e-9), 3),
        "producer_cpu_ms_per_event": round(run.producer_cpu_s * 1000 / per_event, 2),
        "machine_cores_busy": machine_busy,
        "machine_steal_share": steal,
        # What each resource alone would allow at this CPU cost per event: the worker and
        # moto are one Python process each (one core at most, the GIL); the machine
        # serves worker, emulator and producer on all its cores.
        "ceilings_events_per_s": _ceilings(
            worker_cpu_s, emulator_cpu_s, run.producer_cpu_s, per_event, cores
        ),
        "latency_ms": {
            "enqueue_to_terminal": _latency_ms(
                [at - tap.sent_at[k] for k, at in tap.terminal_at.items() if k in tap.sent_at]
            ),
            "receive_to_terminal": _latency_ms(
                [at - tap.received_at[k] for k, at in tap.terminal_at.items() if k in tap.received_at]
            ),
        },
        "api_requests": {
            "total": sum(requests.values()),
            "per_event": round(sum(requests.values()) / per_event, 3),
            "by_service": _per_event(dict(by_service), per_event),
            "by_operation": _per_event(requests, per_event),
        },
    }
    point["bottleneck"], point["bottleneck_figures"] = bottleneck(point, cores)
    return point


# ---- the sweep -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "moto": version("moto"),
        "botocore": version("botocore"),
        "strands_agents": version("strands-agents"),
    }


# `s3` (WAF log files from S3) is run by bench/s3.py, alone.
SCENARIOS = ("all", "sweep", "flood", "s3", "day")


def run_bench(
    config: BenchConfig,
    *,
    command: str,
    err: Console | None = None,
    scenario: str = "all",
    flood: FloodConfig | None = None,
) -> dict[str, Any]:
    """Run the chosen scenarios (the throughput sweep, the flood, or both); the results document."""
    err = err or Console(stderr=True)
    flood = flood or FloodConfig()
    scenarios: list[tuple[str, float]] = []
    if scenario in {"all", "sweep"}:
        scenarios.append(("model_latency", config.latency_ms))
        if config.zero_latency and config.latency_ms > 0:
            scenarios.append(("zero_latency", 0.0))
    plan = [
        (name, latency, c, config.events_for(c)) for name, latency in scenarios for c in config.concurrency
    ]
    events = generate(max(n for *_, n in plan), seed=config.seed) if plan else []
    if plan:
        err.print(f"[bold]event counts[/]: {config.event_count_rule()}")
    for name, latency, c, n in plan:
        err.print(f"  {name:<13} latency {latency:>5g} ms  concurrency {c:>3}  {n:>5} events")
    with_flood = scenario in {"all", "flood"}
    if with_flood:
        err.print(
            f"  flood         latency {flood.latency_ms:>5g} ms  concurrency {flood.concurrency:>3}  "
            f"{flood.mix.total:>5} events, twice (analysis reuse on, then off)"
        )

    results: dict[str, Any] = {
        "machine": machine(),
        "command": command,
        "config": {
            **asdict(config),
            "event_count_rule": config.event_count_rule(),
            "scenario": scenario,
            "flood": asdict(flood),
        },
        "scenarios": [],
    }
    started = time.monotonic()
    with (
        helper_processes() as (emulator, producer),
        _aws_env(emulator.endpoint),
        tempfile.TemporaryDirectory(prefix="secops-bench-") as health_dir,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            refresh_per_second=2,  # the refresher runs in the measured process
        ) as progress,
    ):
        if plan:
            overall = progress.add_task("sweep points", total=sum(n for *_, n in plan))
        for name, latency in scenarios:
            points = []
            for _, _, c, n in (p for p in plan if p[0] == name):
                task = progress.add_task(f"{name} c={c}", total=n)
                point = run_point(
                    emulator,
                    producer,
                    config,
                    latency_ms=latency,
                    concurrency=c,
                    events=events[:n],
                    health_dir=health_dir,
                    progress=progress,
                    task=task,
                )
                progress.advance(overall, n)
                progress.update(task, description=f"{name} c={c}: {point['events_per_s']:.1f} ev/s")
                # One line per point as well: off a terminal (CI, a pipe) rich draws no bar.
                progress.console.print(
                    f"{name} c={c}: {point['terminal']}/{n} events, {point['events_per_s']:.1f} ev/s, "
                    f"worker {point['worker_cpu_ms_per_event']:.1f} / emulator "
                    f"{point['emulator_cpu_ms_per_event']:.1f} CPU ms per event, {point['bottleneck']}",
                    soft_wrap=True,
                )
                points.append(point)
            results["scenarios"].append(
                {"name": name, "model_latency_ms": latency, **sweep_summary(points), "points": points}
            )
        if with_flood:
            results["scenarios"].append(
                run_flood(
                    emulator,
                    producer,
                    config,
                    flood,
                    seed=config.seed,
                    health_dir=health_dir,
                    progress=progress,
                    drive=drive,
                )
            )
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


def sweep_summary(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A sweep scenario's figures over all its points, as the flood records them.

    Every sweep event is unique and the model answers every one, so there is nothing to
    compare with reuse off: ``decisions_equal_to_no_reuse`` is not measured there.
    """
    events = sum(p["events"] for p in points)

    def per_event(total: float) -> float:
        return round(total / max(events, 1), 4)

    writes = sum(
        count["count"]
        for p in points
        for op, count in p["api_requests"]["by_operation"].items()
        if op in DYNAMODB_WRITES
    )
    return {
        "events": events,
        "model_calls_per_event": per_event(sum(p["model_calls"] for p in points)),
        "notifications_critical": sum(p["notifications_critical"] for p in points),
        "incidents": sum(p["incidents"] for p in points),
        "dynamodb_writes_per_event": per_event(writes),
        "aws_requests_per_event": per_event(sum(p["api_requests"]["total"] for p in points)),
        "worker_cpu_ms_per_event": per_event(sum(p["worker_cpu_s"] for p in points) * 1000),
        "lost": sum(p["lost"] for p in points),
        "decisions_equal_to_no_reuse": None,
    }


def _sweeps(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in results["scenarios"] if "points" in s]


# ---- output ----------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def figures_table(results: dict[str, Any]) -> Table:
    table = Table(title="secops-worker throughput (moto and the producer in child processes, scripted model)")
    columns: dict[str, JustifyMethod] = {
        "model": "left",
        "conc.": "right",
        "events": "right",
        "ev/s": "right",
        "ideal": "right",
        "eff.": "right",
        "CPU ms/ev worker/moto": "right",
        "cores busy worker/moto/all": "right",
        "enq→term s p50/p95/p99": "right",
        "recv→term ms p50/p99": "right",
        "API/ev": "right",
        "bottleneck": "left",
    }
    for name, justify in columns.items():
        table.add_column(name, justify=justify)
    for scenario in _sweeps(results):
        for p in scenario["points"]:
            enq = p["latency_ms"]["enqueue_to_terminal"]
            recv = p["latency_ms"]["receive_to_terminal"]
            table.add_row(
                f"{scenario['model_latency_ms']:g} ms",
                str(p["concurrency"]),
                f"{p['terminal']}/{p['events']}",
                _fmt(p["events_per_s"]),
                _fmt(p["ideal_events_per_s"], ".0f"),
                _fmt(p["efficiency"], ".2f"),
                f"{_fmt(p['worker_cpu_ms_per_event'])}/{_fmt(p['emulator_cpu_ms_per_event'])}",
                "/".join(
                    _fmt(p[k], ".2f")
                    for k in ("worker_cores_busy", "emulator_cores_busy", "machine_cores_busy")
                ),
                "/".join(_fmt(None if enq[q] is None else enq[q] / 1000) for q in ("p50", "p95", "p99")),
                "/".join(_fmt(recv[q], ".0f") for q in ("p50", "p99")),
                _fmt(p["api_requests"]["per_event"], ".2f"),
                p["bottleneck"],
            )
    return table


def requests_table(results: dict[str, Any]) -> Table:
    operations = sorted(
        {op for s in _sweeps(results) for p in s["points"] for op in p["api_requests"]["by_operation"]}
    )
    table = Table(title="AWS API requests per event, by operation")
    table.add_column("model")
    table.add_column("conc.", justify="right")
    for op in operations:
        table.add_column(op, justify="right")
    for scenario in _sweeps(results):
        for p in scenario["points"]:
            ops = p["api_requests"]["by_operation"]
            table.add_row(
                f"{scenario['model_latency_ms']:g} ms",
                str(p["concurrency"]),
                *(_fmt(ops[op]["per_event"], ".3f") if op in ops else "-" for op in operations),
            )
    return table


def plot_efficiency(results: dict[str, Any], path: Path) -> bool:
    """Efficiency (and events/s) against concurrency as a PNG; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=120)
    rate_ax = ax.twinx()
    for scenario in _sweeps(results):
        points = scenario["points"]
        xs = [p["concurrency"] for p in points]
        if scenario["model_latency_ms"] > 0:
            ax.plot(xs, [p["efficiency"] for p in points], "o-", color="tab:blue", label="efficiency (left)")
            rate_ax.plot(
                xs,
                [p["ideal_events_per_s"] for p in points],
                ":",
                color="tab:gray",
                label=f"ideal ev/s, {scenario['model_latency_ms']:g} ms model",
            )
        style = "s--" if scenario["model_latency_ms"] > 0 else "^-."
        rate_ax.plot(
            xs,
            [p["events_per_s"] for p in points],
            style,
            color="tab:orange" if scenario["model_latency_ms"] > 0 else "tab:green",
            label=f"ev/s, {scenario['model_latency_ms']:g} ms model (right)",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({p["concurrency"] for s in _sweeps(results) for p in s["points"]}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("concurrency (events in flight)")
    ax.set_ylabel("efficiency = achieved / ideal")
    rate_ax.set_yscale("log")
    rate_ax.set_ylabel("events per second")
    m = results["machine"]
    ax.set_title(f"secops-worker on {m['nproc']} cores ({m['cpu_model']}), Python {m['python']}", fontsize=9)
    handles = ax.get_legend_handles_labels()[0] + rate_ax.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + rate_ax.get_legend_handles_labels()[1]
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    ax.grid(True, alpha=0.3)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


# ---- command line ----------------------------------------------------------------------------


def _concurrency_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not values or any(v < 1 or v > 256 for v in values):
        raise argparse.ArgumentTypeError("concurrency values must be between 1 and 256")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=defaults.events, help="most events per point (default %(default)s)"
    )
    parser.add_argument(
        "--concurrency",
        type=_concurrency_list,
        default=defaults.concurrency,
        help="comma-separated sweep (default 1,4,16,64)",
    )
    parser.add_argument(
        "--latency-ms", type=float, default=defaults.latency_ms, help="model latency per call"
    )
    parser.add_argument(
        "--no-zero-latency", action="store_true", help="skip the second scenario (model latency 0)"
    )
    parser.add_argument(
        "--base-events",
        type=int,
        default=defaults.base_events,
        help="events at concurrency 1 (before the cap)",
    )
    parser.add_argument(
        "--events-per-doubling",
        type=int,
        default=defaults.events_per_doubling,
        help="events added per doubling of the concurrency",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="all",
        help="the throughput sweep, the flood of issue 13, both (default), "
        "s3 (bench/s3.py) or day (bench/day.py)",
    )
    flood = FloodConfig()
    parser.add_argument(
        "--flood-scale",
        type=float,
        default=1.0,
        help=f"the flood's size as a share of its {flood.mix.total} events (default 1)",
    )
    parser.add_argument(
        "--flood-concurrency", type=int, default=flood.concurrency, help="the flood's concurrency"
    )
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="results JSON (default %(default)s)")
    parser.add_argument("--plot", default=DEFAULT_PLOT, help="efficiency PNG; '' for none")
    args = parser.parse_args(argv)
    if args.events < 1 or args.base_events < 1 or args.events_per_doubling < 0 or args.latency_ms < 0:
        parser.error(
            "--events and --base-events must be positive, --events-per-doubling and --latency-ms >= 0"
        )
    if not 0 < args.flood_scale <= 10 or not 1 <= args.flood_concurrency <= 256:
        parser.error("--flood-scale must be in (0, 10], --flood-concurrency between 1 and 256")
    return args


def _scenario_flag() -> argparse.ArgumentParser:
    """Only ``--scenario``: the s3 scenario has options of its own (``bench/s3.py``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--scenario")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    chosen, _ = _scenario_flag().parse_known_args(raw)
    if chosen.scenario == "s3":
        from bench import s3  # WAF log files from S3: a scenario module of its own

        return s3.main(raw)
    if chosen.scenario == "day":
        from bench import day  # a day of one web ACL's logs through the whole path

        return day.main(raw)
    args = parse_args(argv)
    config = BenchConfig(
        events=args.events,
        concurrency=args.concurrency,
        latency_ms=args.latency_ms,
        zero_latency=not args.no_zero_latency,
        base_events=args.base_events,
        events_per_doubling=args.events_per_doubling,
        seed=args.seed,
    )
    from secops_core.logs import configure_logging

    # WARNING: at INFO the worker's per-event log lines would dominate the CPU measured.
    configure_logging("WARNING", "json")
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    command = "python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv)
    flood = FloodConfig(
        mix=FloodMix().scaled(args.flood_scale),
        concurrency=args.flood_concurrency,
        latency_ms=args.latency_ms,
    )
    try:
        results = run_bench(config, command=command.strip(), scenario=args.scenario, flood=flood)
    except KeyboardInterrupt:
        out.print("[red]interrupted[/]: no results written")
        return 130
    output = Path(args.output)
    write_run(output, results)
    if _sweeps(results):
        out.print(figures_table(results))
        out.print(requests_table(results))
    for scenario in results["scenarios"]:
        if scenario["name"] == "flood":
            out.print(f"[bold]flood[/] ({scenario['events']} events, concurrency {scenario['concurrency']}):")
            out.print(flood_summary(scenario), markup=False)
    out.print(f"results: {output}  (whole run {results['elapsed_s']} s)")
    if args.plot and _sweeps(results):
        if plot_efficiency(results, Path(args.plot)):
            out.print(f"plot: {args.plot}")
        else:
            out.print("plot skipped: matplotlib is not installed")
    incomplete = [
        f"{s['name']} c={p['concurrency']}"
        for s in results["scenarios"]
        for p in (s["points"] if "points" in s else s["runs"].values())
        if not p["finished"]
    ]
    if incomplete:
        out.print(
            f"[red]incomplete points (not every event reached a terminal state): {', '.join(incomplete)}[/]"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
