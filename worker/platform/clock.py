"""The one seam through which the worker reads time, so tests move the clock in one place."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def epoch() -> float:
    """Seconds since the epoch (DynamoDB leases and TTLs compare these)."""
    return time.time()
