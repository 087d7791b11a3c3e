"""When an incident is worth a notification: the milestones a join crossed (pure).

Every milestone has a stable id (``growth:100``, ``severity:5``, ``class:sqli``), so
replicas that see the same crossing derive the same id and only one claim can win it.
Joins of one incident are serialized by its version, so the count ranges they cover
never overlap: a join that jumps several growth steps names only the highest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from math import ceil
from typing import Literal

from worker.incidents.keys import OTHER
from worker.incidents.records import IncidentRecord

MilestoneKind = Literal["opened", "growth", "severity_rise", "new_class", "reached_app", "resolved"]

# Counts 10, 100, 1000 ...: a page per order of magnitude of one attack.
DEFAULT_GROWTH_FACTOR = 10.0


@dataclass(frozen=True, slots=True)
class Milestone:
    """One crossing worth telling an operator about."""

    id: str
    kind: MilestoneKind
    summary: str  # what changed, in words for the message


OPENED = Milestone("opened", "opened", "new incident")
RESOLVED = Milestone("resolved", "resolved", "incident resolved")
REACHED_APP = Milestone(
    "reached_app", "reached_app", "a request reached the application in an incident that was all blocked"
)


def milestone_named(milestone: str, record: IncidentRecord) -> Milestone:
    """The milestone with id ``milestone``, told from ``record`` as it is now: what a
    retry of a claim left without a notice publishes.
    """
    kind, _, arg = milestone.partition(":")
    if kind == "growth":
        return Milestone(milestone, "growth", f"{record.count} events (passed {arg})")
    if kind == "severity":
        return Milestone(milestone, "severity_rise", f"severity rose to {arg}")
    if kind == "class":
        return Milestone(milestone, "new_class", f"new attack class {arg}")
    known = {m.id: m for m in (OPENED, RESOLVED, REACHED_APP)}
    if milestone not in known:
        raise ValueError(f"unknown milestone {milestone!r}")
    return known[milestone]


def growth_steps(factor: float) -> Iterator[int]:
    """The counts that are growth milestones: factor, factor², ... as strictly rising
    integers (a factor below 2 still moves by at least one).
    """
    if factor <= 1:
        raise ValueError("the growth factor must be above 1")
    exact = Fraction(str(factor))
    step = max(2, ceil(exact))
    while True:
        yield step
        step = max(step + 1, ceil(step * exact))


def growth_crossed(before: int, after: int, factor: float) -> int | None:
    """The highest growth step in ``(before, after]``, or None."""
    highest = None
    for step in growth_steps(factor):
        if step > after:
            return highest
        if step > before:
            highest = step
    return highest  # pragma: no cover - growth_steps never ends


def crossed(
    before: IncidentRecord | None, after: IncidentRecord, *, growth_factor: float = DEFAULT_GROWTH_FACTOR
) -> tuple[Milestone, ...]:
    """The milestones a join crossed, from the incident before it (None: it opened it).

    Opening is notified at once and its message carries the totals, so nothing else is
    named in the join that opened the incident.
    """
    if before is None:
        return (OPENED,)
    found: list[Milestone] = []
    step = growth_crossed(before.count, after.count, growth_factor)
    if step is not None:
        found.append(Milestone(f"growth:{step}", "growth", f"{after.count} events (passed {step})"))
    if after.max_severity > before.max_severity:
        found.append(
            Milestone(
                f"severity:{after.max_severity}",
                "severity_rise",
                f"severity rose from {before.max_severity} to {after.max_severity}",
            )
        )
    for name in sorted(set(after.classes) - set(before.classes) - {OTHER}):
        found.append(Milestone(f"class:{name}", "new_class", f"new attack class {name}"))
    if before.reached_app == 0 and after.reached_app > 0:
        found.append(REACHED_APP)
    return tuple(found)
