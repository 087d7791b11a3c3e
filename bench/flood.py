"""The flood scenario (issue 13): one attack is many requests, and should cost like one.

The mix (``bench.events.generate_flood``): a scanner sending 600 SQL injections in COUNT
mode from one IP against three endpoints, a botnet of 200 IPs sending one blocked XSS
each, 50 distinct attacks and 200 noise records, shuffled. It runs twice through the real
worker at one concurrency: with the worker's defaults (analysis reuse on), then with
reuse off, and the two runs' final severity and triage are compared event by event.

The model is the scripted Strands provider, with latency, answering as a consistent
analyst would: the same answer for the same attack (rule, disposition, method, URI
template), severity never below the floor, and one point higher for an attack that
reached a login or admin endpoint by POST. Whether reuse keeps decisions equal then
depends on what the worker puts in its analysis signature, which is what the figure
is meant to check; it cannot show what a real model would say differently about two
requests of one signature (their arguments or source, say).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress

from bench.config import BenchConfig, Driven
from bench.emulator import EmulatorProcess, ProducerProcess
from bench.events import FLOOD_SCANNER_IP, BenchEvent, FloodMix, generate_flood
from testkit.scripted_model import RecordedRequest, ScriptedModel, ToolUse, Turn

# The figures each flood run records, beside the point's throughput figures.
FLOOD_FIGURES = (
    "events",
    "model_calls_per_event",
    "notifications_critical",
    "incidents",
    "dynamodb_writes_per_event",
    "aws_requests_per_event",
    "worker_cpu_ms_per_event",
    "lost",
)
# The targets for the flood mix, to print beside the figures.
TARGETS = {
    "model_calls_per_event": "<= 0.05",
    "notifications_critical_scanner": "<= 3",
    "decisions_equal_to_no_reuse": ">= 0.99",
    "lost": "0",
    "dynamodb_writes_per_event": "<= 1.2",
    "aws_requests_per_event": "<= 2.0",
    "worker_cpu_ms_per_event": "<= 17.5 (half of 31-38 before incidents)",
}

_FLOOR = re.compile(r"Deterministic severity floor: (\d)")
_CLASS = re.compile(r'Floor attack class: "([^"]*)"')
_FIELD = r'"{name}": ?"([^"]*)"'
_SENSITIVE_PATHS = ("/login", "/admin")


class ConsistentModel(ScriptedModel):
    """A scripted model that answers as a function of the attack, not of the call order."""

    def __init__(self, *, latency_s: float) -> None:
        super().__init__(["unused"], latency_s=latency_s, cycle=True)

    def _next_turn(self, request: RecordedRequest) -> Turn:
        super()._next_turn(request)  # counts and records the call
        return ToolUse(assessment(request.prompt))


def assessment(prompt: str) -> dict[str, Any]:
    """The consistent analyst's answer to one analysis prompt."""
    floor = int(_match(_FLOOR, prompt) or 0)
    attack_class = _match(_CLASS, prompt) or "none"
    method = _match(re.compile(_FIELD.format(name="http_method")), prompt) or ""
    uri = _match(re.compile(_FIELD.format(name="uri")), prompt) or ""
    severity = floor
    if floor >= 4 and method == "POST" and uri.startswith(_SENSITIVE_PATHS):
        severity = min(5, floor + 1)
    return {
        "severity_rating": severity,
        "security_analysis": f"Scripted consistent analysis of a {attack_class} request.",
        "follow_up_suggestion": "Review the targeted endpoint.",
        "attack_type": attack_class,
    }


def _match(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1) if found else None


@dataclass(frozen=True)
class FloodConfig:
    mix: FloodMix = field(default_factory=FloodMix)
    concurrency: int = 16
    latency_ms: float = 200.0


def decision(record: Any) -> tuple[int | None, str]:
    """An event's final severity and triage, as the store holds them."""
    if record is None:
        return None, "absent"
    if record.triage is not None:
        return record.triage.severity_rating, record.triage.action
    severity = record.analysis.severity_rating if record.analysis is not None else None
    return severity, record.status


def equal_share(events: Sequence[BenchEvent], runs: Sequence[Mapping[str, Any]]) -> float:
    """The share of events whose decision is the same in every run."""
    same = sum(1 for e in events if len({decision(r.get(e.key)) for r in runs}) == 1)
    return round(same / max(len(events), 1), 4)


def scanner_notices(incidents: Sequence[Any]) -> int:
    """Notifications recorded on the scanner's incidents (one per milestone sent)."""
    return sum(len(i.notices) for i in incidents if i.source == FLOOD_SCANNER_IP)


def run_flood(
    emulator: EmulatorProcess,
    producer: ProducerProcess,
    bench_config: BenchConfig,
    flood: FloodConfig,
    *,
    seed: int,
    health_dir: str,
    progress: Progress | None = None,
    drive: Callable[..., Driven],
) -> dict[str, Any]:
    """Run the flood with reuse on, then off, each through ``drive`` (the sweep's
    :func:`bench.run.drive`); the scenario's figures for results.json."""
    events = generate_flood(flood.mix, seed=seed)
    runs: dict[str, Any] = {}
    for name, overrides in (("reuse", {}), ("no_reuse", {"reuse_enabled": False})):
        task = progress.add_task(f"flood {name}", total=len(events)) if progress is not None else None
        model = ConsistentModel(latency_s=flood.latency_ms / 1000)
        runs[name] = drive(
            emulator,
            producer,
            bench_config,
            latency_ms=flood.latency_ms,
            concurrency=flood.concurrency,
            events=events,
            health_dir=health_dir,
            progress=progress,
            task=task,
            model=model,
            overrides=overrides,
        )
    reuse, no_reuse = runs["reuse"], runs["no_reuse"]
    figures = {name: reuse.point[name] for name in FLOOD_FIGURES}
    figures["notifications_critical_scanner"] = scanner_notices(reuse.incidents)
    figures["decisions_equal_to_no_reuse"] = equal_share(events, [reuse.records, no_reuse.records])
    escalated = [r for r in reuse.records.values() if r.status == "escalated"]
    figures["escalated"] = len(escalated)
    # Issue 13: every escalated event is linked to an incident.
    figures["escalated_without_incident"] = sum(1 for r in escalated if not r.incident_id)
    return {
        "name": "flood",
        "model_latency_ms": flood.latency_ms,
        "concurrency": flood.concurrency,
        "mix": {
            "scanner": flood.mix.scanner,
            "botnet": flood.mix.botnet,
            "distinct": flood.mix.distinct,
            "noise": flood.mix.noise,
            "kinds": dict(Counter(e.kind for e in events)),
        },
        **figures,
        "targets": TARGETS,
        "no_reuse": {
            **{name: no_reuse.point[name] for name in FLOOD_FIGURES},
            "notifications_critical_scanner": scanner_notices(no_reuse.incidents),
        },
        "incidents_by_source": _incidents_by_source(reuse.incidents),
        "runs": {"reuse": reuse.point, "no_reuse": no_reuse.point},
    }


def _incidents_by_source(incidents: Sequence[Any]) -> list[dict[str, Any]]:
    """The largest incidents, as an operator would list them."""
    ranked = sorted(incidents, key=lambda i: -i.count)[:5]
    return [
        {
            "id": i.id,
            "source": i.source,
            "attack_class": i.attack_class,
            "count": i.count,
            "max_severity": i.max_severity,
            "notices": [n.milestone for n in i.notices],
        }
        for i in ranked
    ]


def flood_summary(scenario: Mapping[str, Any]) -> str:
    """One line per figure with its target, for the console."""
    lines = []
    for name in (*FLOOD_FIGURES, "notifications_critical_scanner", "decisions_equal_to_no_reuse"):
        target = TARGETS.get(name)
        no_reuse = scenario["no_reuse"].get(name)
        lines.append(
            f"{name:<32} {json.dumps(scenario[name]):>10}"
            + (f"   target {target}" if target else "")
            + (f"   (reuse off: {no_reuse})" if no_reuse is not None else "")
        )
    return "\n".join(lines)
