"""APScheduler inside ``secops run``: the monitor job and the block expiry pass on their
intervals, in every replica.

- ``coalesce=True``: runs missed while the process was busy or asleep collapse to one;
- ``max_instances=1``: never two runs of the job at once in one process;
- the slot lock in the store makes each slot run once across all replicas;
- shut down together with the consumer on SIGTERM (``run_worker`` does it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from worker.errors import WorkerError
from worker.pipeline.monitor_job import MonitorJob, MonitorStopped
from worker.response.expiry import ExpiryJob
from worker.response.expiry import safe_tick as expiry_tick

log = structlog.get_logger("worker.scheduler")


def _safe_tick(job: MonitorJob) -> None:
    # A failed run must not kill the scheduler thread; the next slot tries again.
    try:
        job.tick()
    except MonitorStopped:
        log.info("monitor_run_stopped_for_shutdown")
    except WorkerError as exc:
        log.warning("monitor_run_failed", reason=exc.reason, error=exc.message)
    except Exception:
        log.exception("monitor_run_crashed")


def build_scheduler(
    job: MonitorJob | None, *, interval_s: int, first_run_in_s: float = 5.0
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=UTC)
    if job is None:
        return scheduler
    scheduler.add_job(
        _safe_tick,
        IntervalTrigger(seconds=interval_s, timezone=UTC),
        args=[job],
        id="monitor",
        name="monitor",
        coalesce=True,
        max_instances=1,
        # A run that could not start within half an interval is dropped: the next
        # slot reads the same window anyway.
        misfire_grace_time=max(1, interval_s // 2),
        next_run_time=datetime.now(UTC) + timedelta(seconds=first_run_in_s),
        replace_existing=True,
    )
    return scheduler


def add_expiry_job(scheduler: BackgroundScheduler, job: ExpiryJob, *, first_run_in_s: float = 1.0) -> None:
    """The block expiry pass: every replica ticks, the slot lock lets one run per slot."""
    scheduler.add_job(
        expiry_tick,
        IntervalTrigger(seconds=job.interval_s, timezone=UTC),
        args=[job],
        id="block-expiry",
        name="block-expiry",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=max(1, job.interval_s // 2),
        # Soon after start: blocks that expired while every worker was down go first.
        next_run_time=datetime.now(UTC) + timedelta(seconds=first_run_in_s),
        replace_existing=True,
    )


class MonitorScheduler:
    """The scheduler and its jobs, stopped together: the jobs first, then the scheduler."""

    def __init__(self, scheduler: BackgroundScheduler, job: MonitorJob | None) -> None:
        self.scheduler = scheduler
        self.job = job

    def shutdown(self) -> None:
        # A running pass stops at its next chunk or pattern; waiting for it is then short.
        if self.job is not None:
            self.job.stop_event.set()
        self.scheduler.shutdown(wait=True)


def start_monitor_scheduler(
    job: MonitorJob | None, *, interval_s: int, hours: int, expiry: ExpiryJob | None = None
) -> MonitorScheduler:
    """Start the monitor ``job`` (if any) every ``interval_s`` and the block ``expiry``
    pass (if any), both built by the composition root; the caller shuts them down."""
    scheduler = build_scheduler(job, interval_s=interval_s)
    if expiry is not None:
        add_expiry_job(scheduler, expiry)
        log.info("block_expiry_scheduled", interval_s=expiry.interval_s)
    scheduler.start()
    if job is not None:
        log.info("monitor_scheduled", interval_s=interval_s, hours=hours)
    return MonitorScheduler(scheduler, job)
