"""The tuning report's picture: matches per rule over time, one line per ranked rule.

matplotlib is the optional ``plot`` extra (the table and the JSON need nothing more);
without it the caller says so and writes no file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.tuning.report import TuningReport

TOP_RULES = 8


def plot_matches(report: TuningReport, path: Path) -> bool:
    """Write the chart to ``path`` (PNG, SVG or PDF by its suffix); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=120)
    for name, points in report.series(TOP_RULES).items():
        rank = next(f.rank for f in report.findings if f.rule.name == name)
        # matplotlib plots datetimes; its stubs only say numbers.
        times: Any = [p[0] for p in points]
        ax.plot(times, [p[1] for p in points], "-", linewidth=1.4, label=f"#{rank} {name}")
    hours = report.bucket.total_seconds() / 3600
    ax.set_ylabel(f"matches per {hours:g} h")
    ax.set_title(
        f"WAF rule matches, {report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC "
        f"({report.source}), ranked by how likely they misfire",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True
