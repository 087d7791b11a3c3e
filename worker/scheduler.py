"""APScheduler inside ``secops run``: the monitor job on an interval, in every replica.

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


def build_scheduler(job: MonitorJob, *, interval_s: int, first_run_in_s: float = 5.0) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=UTC)
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


class MonitorScheduler:
    """The scheduler and its job, stopped together: the job first, then the scheduler."""

    def __init__(self, scheduler: BackgroundScheduler, job: MonitorJob) -> None:
        self.scheduler = scheduler
        self.job = job

    def shutdown(self) -> None:
        # A running pass stops at its next chunk or pattern; waiting for it is then short.
        self.job.stop_event.set()
        self.scheduler.shutdown(wait=True)


def start_monitor_scheduler(job: MonitorJob, *, interval_s: int, hours: int) -> MonitorScheduler:
    """Start ``job`` (built by the composition root) every ``interval_s``; the caller
    shuts it down."""
    scheduler = build_scheduler(job, interval_s=interval_s)
    scheduler.start()
    log.info("monitor_scheduled", interval_s=interval_s, hours=hours)
    return MonitorScheduler(scheduler, job)
