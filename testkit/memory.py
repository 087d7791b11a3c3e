"""The peak resident memory of this process alone, for the benches' figures."""

from __future__ import annotations

import re
import resource
from pathlib import Path

_HIGH_WATER = re.compile(r"VmHWM:\s+(\d+)\s+kB")


def peak_rss_mb() -> float:
    """This program's peak resident set in MB.

    VmHWM is the high-water mark of this program's own address space. ``ru_maxrss``
    carries the parent's memory over a fork and exec, so a child started by a bench
    that holds moto would report the bench's size instead of its own; it is the
    fallback where /proc is not there.
    """
    try:
        found = _HIGH_WATER.search(Path("/proc/self/status").read_text(encoding="ascii"))
    except OSError:
        found = None
    if found is not None:
        return round(int(found.group(1)) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
