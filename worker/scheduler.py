"""APScheduler inside ``secops run``: the monitor job on an interval, in every replica.

- ``coalesce=True``: runs missed while the process was busy or asleep collapse to one;
- ``max_instances=1``: never two runs of the job at once in one process;
- the slot lock in the store makes each slot run once across all replicas;
- shut down together with the consumer on SIGTERM (``run_worker`` does it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from worker.monitor_job import MonitorJob

log = structlog.get_logger("worker.scheduler")


def _safe_tick(job: MonitorJob) -> None:
    # A failed run must not kill the scheduler thread; the next slot tries again.
    try:
        job.tick()
    except Exception:
        log.exception("monitor_run_failed")


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


def start_monitor_scheduler(worker: Any) -> BackgroundScheduler:
    """Start the monitor job for a built worker; the caller shuts it down."""
    settings = worker.settings
    scheduler = build_scheduler(MonitorJob.from_worker(worker), interval_s=settings.monitor_interval_s)
    scheduler.start()
    log.info("monitor_scheduled", interval_s=settings.monitor_interval_s, hours=settings.monitor_hours)
    return scheduler
