"""Wiring: settings in, a running worker out. No logic of its own beyond the order."""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

import structlog

from worker import ports
from worker.agents import Agents
from worker.consumers.circuit import CircuitBreaker, circuit_logger
from worker.consumers.dispatcher import Dispatcher
from worker.consumers.router import MessageRouter
from worker.consumers.s3_objects import LogObjectHandler, read_limits
from worker.consumers.sqs import SqsSource
from worker.incidents.factory import dynamo_joiner
from worker.incidents.joiner import IncidentJoiner
from worker.notify.blocks import build_block_announcer
from worker.notify.fanout import FanoutNotifier
from worker.notify.registry import build_notifier
from worker.pipeline.monitor_job import MonitorJob
from worker.pipeline.outcome import DelayPolicy
from worker.pipeline.processor import EventProcessor
from worker.pipeline.reuse import AnalysisReuse, SkipPolicy
from worker.platform import aws
from worker.platform.health import HealthBeacon
from worker.platform.metrics import Metrics, emf_wanted
from worker.platform.resources import Resources, resolve_resources
from worker.response.blocker import Blocker
from worker.response.expiry import ExpiryJob
from worker.response.factory import build_blocker, build_responder
from worker.response.responder import PolicyResponder
from worker.scheduler import start_monitor_scheduler
from worker.settings import Settings
from worker.store.dynamodb import EventStore
from worker.suppressions.cache import SuppressionCache
from worker.suppressions.dynamodb import DynamoSuppressionRepo

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_s3.client import S3Client
    from types_boto3_sns.client import SNSClient
    from types_boto3_sqs.client import SQSClient
    from types_boto3_wafv2.client import WAFV2Client

log = structlog.get_logger("worker.daemon")


@dataclass
class Clients:
    sqs: SQSClient
    sns: SNSClient
    dynamodb: DynamoDBClient
    # Reads WAF log files named by S3 notifications on the events queue.
    s3: S3Client
    # Writes the block IP sets (response actions) in the worker's region; a CLOUDFRONT
    # set elsewhere gets its own client (worker.response.factory).
    wafv2: WAFV2Client

    @classmethod
    def from_settings(cls, settings: Settings) -> Clients:
        session = aws.aws_session(settings.aws_region)
        # One pool slot per worker thread plus the poller, heartbeat and acker.
        pool = settings.concurrency + 4
        # Long polls last up to wait_time_s; the read timeout must exceed it.
        local = settings.localstack
        return cls(
            sqs=aws.client(
                "sqs",
                session=session,
                read_timeout=settings.wait_time_s + 10,
                max_pool_connections=pool,
                localstack=local,
            ),
            sns=aws.client("sns", session=session, max_pool_connections=pool, localstack=local),
            dynamodb=aws.client("dynamodb", session=session, max_pool_connections=pool, localstack=local),
            s3=aws.client("s3", session=session, max_pool_connections=pool, localstack=local),
            wafv2=aws.client("wafv2", session=session, localstack=local),
        )


@dataclass
class Worker:
    settings: Settings
    clients: Clients
    resources: Resources
    store: EventStore
    notifier: FanoutNotifier
    agents: ports.Agents
    processor: EventProcessor
    consumer: Dispatcher
    metrics: Metrics
    owner: str
    incidents: IncidentJoiner
    monitor: MonitorJob
    suppressions: SuppressionCache | None = None
    # Response actions (docs/architecture.md, "Response actions"): the blocker whenever an
    # IP set is configured (its expiry pass runs even with the policy off), the policy
    # unless SECOPS_RESPONSE_MODE=off.
    blocker: Blocker | None = None
    responder: PolicyResponder | None = None
    # The blocker's expiry pass, scheduled beside the monitor job.
    expiry: ExpiryJob | None = None


def owner_id() -> str:
    """Who holds a lease: host and pid, plus randomness so a restarted pid differs."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_worker(
    settings: Settings,
    *,
    clients: Clients | None = None,
    resources: Resources | None = None,
    agents: ports.Agents | None = None,
    metrics: Metrics | None = None,
) -> Worker:
    """The composition root: concrete adapters built here, handed to the pipeline as ports."""
    clients = clients or Clients.from_settings(settings)
    metrics = metrics or Metrics(
        namespace=settings.metrics_namespace,
        enabled=settings.metrics_enabled and emf_wanted(settings.log_format),
    )
    resources = resources or resolve_resources(
        settings, sqs=clients.sqs, sns=clients.sns, dynamodb=clients.dynamodb
    )
    store = EventStore(settings.table_name, client=clients.dynamodb, ttl_days=settings.event_ttl_days)
    notifier = build_notifier(settings, clients=clients, resources=resources, metrics=metrics)
    # Agents handed in (tests, chaos) may wrap any model, whatever the settings say.
    model_free = agents is None and settings.transport == "inprocess" and settings.provider == "rules"
    agents = agents or Agents.from_settings(settings)
    owner = owner_id()
    # One joiner per process: its group commit batches every worker thread's joins.
    incidents = dynamo_joiner(settings, client=clients.dynamodb)
    suppressions = SuppressionCache(
        DynamoSuppressionRepo(settings.table_name, client=clients.dynamodb),
        refresh_s=settings.suppression_refresh_s,
    )
    blocker = build_blocker(
        settings,
        dynamodb=clients.dynamodb,
        wafv2=clients.wafv2,
        listener=build_block_announcer(
            settings, sns_client=clients.sns, resources=resources, metrics=metrics
        ),
    )
    responder = build_responder(settings, blocker=blocker, metrics=metrics)
    processor = EventProcessor(
        store=store,
        agents=agents,
        notifier=notifier,
        incidents=incidents,
        owner=owner,
        lease_s=settings.lease_s,
        fallback_to_rules=settings.on_runtime_unavailable == "rules",
        metrics=metrics,
        model_call_budget=settings.model_call_budget,
        max_deliveries=settings.max_receive_count,
        reuse=AnalysisReuse(store, window_s=settings.reuse_window_s) if settings.reuse_enabled else None,
        skip=SkipPolicy(
            unmatched=settings.skip_model_unmatched,
            blocked_noise=settings.skip_model_blocked_noise,
            max_floor=settings.skip_model_max_floor,
        ),
        # In-process rules: no model anywhere, so every event takes the fast path.
        model_free=model_free,
        # A retry is seen again within its message's visibility plus the longest delay.
        retry_episode_gap_s=settings.retry_max_delay_s + settings.visibility_timeout_s,
        suppressions=suppressions,
        responder=responder,
    )
    circuit = CircuitBreaker(
        failure_threshold=settings.circuit_failure_threshold,
        open_s=settings.circuit_open_s,
        on_change=circuit_logger(metrics),
    )
    log_objects = LogObjectHandler(
        s3=clients.s3,
        sqs=clients.sqs,
        queue_url=resources.queue_url,
        checkpoints=store,
        events=store,
        owner=owner,
        lease_s=settings.lease_s,
        keep=settings.log_filter,
        counts=store,
        checkpoint_every_s=settings.log_checkpoint_s,
        # Late-bound: the dispatcher is built next, and a stop ends a read at a checkpoint.
        stopping=lambda: consumer.stopping,
        metrics=metrics,
        limits=read_limits(settings),
        buckets=settings.log_bucket_rules,
        # Late-bound like `stopping`.
        progress=lambda activity: consumer.note_progress(activity),  # noqa: PLW0108
    )
    router = MessageRouter(events=processor.process, log_objects=log_objects)
    consumer = Dispatcher(
        source=SqsSource(
            sqs=clients.sqs,
            queue_url=resources.queue_url,
            visibility_timeout_s=settings.visibility_timeout_s,
        ),
        process=router.process,
        concurrency=settings.concurrency,
        batch_size=settings.batch_size,
        wait_time_s=settings.wait_time_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        drain_timeout_s=settings.drain_timeout_s,
        delays=DelayPolicy.for_queue(
            base_s=settings.retry_base_delay_s,
            max_s=settings.retry_max_delay_s,
            unavailable_s=settings.circuit_open_s,
            max_receive_count=settings.max_receive_count,
        ),
        circuit=circuit,
        exit_when_idle_polls=settings.exit_when_idle_polls,
        metrics=metrics,
        health=HealthBeacon(settings.health_file),
    )
    monitor = MonitorJob(
        store=store,
        monitor_agent=agents.monitor,
        notifier=notifier,
        incidents=incidents,
        owner=owner,
        interval_s=settings.monitor_interval_s,
        hours=settings.monitor_hours,
        threshold=settings.monitor_threshold,
        growth_factor=settings.monitor_growth_factor,
        chunk_size=settings.monitor_chunk_size,
        metrics=metrics,
        suppressions=suppressions,
        counts=store,
        responder=responder,
    )
    expiry = (
        ExpiryJob(
            blocker=blocker,
            lock=store,
            owner=owner,
            interval_s=settings.response_expiry_interval_s,
            metrics=metrics,
        )
        if blocker is not None
        else None
    )
    return Worker(
        settings,
        clients,
        resources,
        store,
        notifier,
        agents,
        processor,
        consumer,
        metrics,
        owner,
        incidents,
        monitor,
        suppressions,
        blocker=blocker,
        responder=responder,
        expiry=expiry,
    )


def install_signal_handlers(stop: Callable[[], None]) -> None:
    """SIGTERM (ECS stop) and SIGINT (Ctrl-C) both start the graceful shutdown."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_worker(worker: Worker, *, with_scheduler: bool = True) -> int:
    """Run the consumer (and the monitor scheduler) until a signal or idle exit."""
    scheduler = None
    settings = worker.settings
    if with_scheduler and (settings.monitor_enabled or worker.expiry is not None):
        scheduler = start_monitor_scheduler(
            worker.monitor if settings.monitor_enabled else None,
            interval_s=settings.monitor_interval_s,
            hours=settings.monitor_hours,
            expiry=worker.expiry,
        )
    install_signal_handlers(worker.consumer.stop)
    log.info(
        "worker_started",
        owner=worker.owner,
        transport=worker.settings.transport,
        provider=worker.settings.provider,
        queue_url=worker.resources.queue_url,
    )
    try:
        worker.consumer.run()
    finally:
        if worker.consumer.abandoned:
            # Their messages are visible again; their leases must not outlive them.
            worker.processor.release_claims()
        if scheduler is not None:
            scheduler.shutdown()
        worker.agents.close()
    return 0
