"""Response actions under chaos: the workers block the escalated sources in a WAF IP set
(moto's WAFv2) while UpdateIPSet loses its lock token at six times the fault rate,
workers are killed and the expiry pass runs once per slot; the orchestrator reads the
set every second (ground truth: what WAF held, when), and the checks below hold it
against the block records in the table.

- **no address blocked twice**: the set never lists a network twice, and no network
  has two generations of its block in force at once;
- **no allowlisted address written**: nothing the set ever held overlaps the allowlist
  (half the plan's random sources, 198.18.0.0/17, plus the reserved ranges);
- **no block outliving its expiry**: every network seen in the set at time t has a
  generation blocked at or before t, and the time since that generation's expiry,
  counted while at least one worker was up (a restarted worker takes seconds to come
  up on a loaded machine, and a pass needs a live worker), is at most one expiry slot
  plus the IP set write's retry budget (one slot more when a worker was killed or
  stopped meanwhile: it may have held the slot's pass); every block in force has expired
  and been removed before the run ends (when the drain waited long enough);
- **every block has an audit record and an incident**: each network seen in the set has
  a record whose history says who blocked it, why, for which incident, and that
  incident exists in the table;
- **the hourly cap held**: no clock hour opened more blocks than the cap.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from worker.response.addresses import Allowlist, canonical, parse_network
from worker.response.keys import BLOCK_PREFIX, LOCK_RETRY_BUDGET_S, block_key, hour_key
from worker.response.records import BlockRecord, IpSetRef
from worker.response.wafv2 import ensure_ip_set

IP_SET = "chaos-blocked"
ALLOWLIST = "198.18.0.0/17"
RELEASED = ("benchmarking", "documentation")
EXPIRY_INTERVAL_S = 10  # the settings' minimum: several expiry slots per run
DURATION_S = 20  # blocks expire, and are taken out, within the run
PER_HOUR = 40  # below the escalations of a default run: the cap is reached
# The orchestrator reads the set this often; an address may be seen this much late.
OBSERVE_EVERY_S = 1.0
# How late an expiry may be: one slot, the write's retry budget, and the reading's lag.
EXPIRY_BOUND_S = EXPIRY_INTERVAL_S + LOCK_RETRY_BUDGET_S + OBSERVE_EVERY_S
_EXAMPLES = 5


def worker_settings(v4: IpSetRef) -> dict[str, str]:
    """The response settings of every worker of the run."""
    return {
        "SECOPS_RESPONSE_MODE": "on",
        "SECOPS_RESPONSE_IP_SET_V4": v4.arn,
        "SECOPS_RESPONSE_ALLOWLIST": ALLOWLIST,
        "SECOPS_RESPONSE_BLOCKABLE_RANGES": ",".join(RELEASED),
        "SECOPS_RESPONSE_DURATION_S": str(DURATION_S),
        "SECOPS_RESPONSE_EXPIRY_INTERVAL_S": str(EXPIRY_INTERVAL_S),
        "SECOPS_RESPONSE_MAX_PER_HOUR": str(PER_HOUR),
    }


@dataclass
class BlockWatch:
    """The run's IP set and what it held over time."""

    wafv2: Any
    ip_set: IpSetRef
    observations: list[tuple[float, list[str]]] = field(default_factory=list)
    _last: float = 0.0

    @classmethod
    def create(cls, wafv2: Any) -> BlockWatch:
        ip_set, _ = ensure_ip_set(wafv2, name=f"{IP_SET}-v4", scope="REGIONAL", version="IPV4")
        return cls(wafv2=wafv2, ip_set=ip_set)

    def observe(self, *, force: bool = False) -> None:
        """Read the set, at most once a second unless ``force``."""
        now = time.time()
        if not force and now - self._last < OBSERVE_EVERY_S:
            return
        self._last = now
        response = self.wafv2.get_ip_set(Name=self.ip_set.name, Scope=self.ip_set.scope, Id=self.ip_set.id)
        self.observations.append((time.time(), list(response["IPSet"].get("Addresses", []))))

    def in_force(self, items: Callable[[], dict[str, dict[str, Any]]]) -> int:
        """Blocks whose record is still in force (the drain waits for none)."""
        return sum(
            1
            for key, item in items().items()
            if key.startswith(BLOCK_PREFIX) and item.get("status") != "removed"
        )


@dataclass(frozen=True)
class _Generation:
    key: str
    generation: int
    at: float
    expires_at: float
    ended_at: float | None
    incident_id: str | None
    by: str


def _generations(record: BlockRecord) -> list[_Generation]:
    ends = {e.generation: e.at for e in record.history if e.action != "blocked"}
    return [
        _Generation(
            key=record.key,
            generation=e.generation,
            at=e.at,
            expires_at=e.expires_at or 0.0,
            ended_at=ends.get(e.generation),
            incident_id=e.incident_id,
            by=e.by,
        )
        for e in record.history
        if e.action == "blocked"
    ]


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _up_between(up: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in up)


def check_blocks(
    items: dict[str, dict[str, Any]],
    observations: list[tuple[float, list[str]]],
    *,
    ip_set_id: str,
    settled: bool,
    up: list[tuple[float, float]] | None = None,
    stops: Sequence[float] = (),
) -> dict[str, Any]:
    """``up``: when workers were up (ready to run a pass), as intervals; None counts all
    time as up. ``stops``: when a worker was killed or stopped."""
    """The five invariants of the response actions, with examples of what broke them."""
    records = [BlockRecord.from_dict(item) for key, item in items.items() if key.startswith(BLOCK_PREFIX)]
    generations: dict[str, list[_Generation]] = defaultdict(list)
    for record in records:
        generations[record.key].extend(_generations(record))
    allowlist = Allowlist.build([ALLOWLIST], release=RELEASED)
    uptime = _merged(up) if up is not None else None

    twice: list[Any] = []
    for t, addresses in observations:
        spelled = [canonical(a) for a in addresses]
        if len(spelled) != len(set(spelled)):
            twice.append({"t": t, "listed_twice": sorted({a for a in spelled if spelled.count(a) > 1})})
    for key, gens in generations.items():
        ordered = sorted(gens, key=lambda g: g.at)
        for first, second in pairwise(ordered):
            if first.ended_at is None or first.ended_at > second.at:
                twice.append({"key": key, "generations": [first.generation, second.generation]})

    allowlisted = sorted(
        {
            a
            for _, addresses in observations
            for a in addresses
            if allowlist.covering(parse_network(canonical(a)))
        }
    )

    outlived: list[Any] = []
    unaudited: list[Any] = []
    seen: set[str] = set()
    latest_past_expiry = 0.0
    for t, addresses in observations:
        for address in addresses:
            network = canonical(address)
            gens = generations.get(block_key(ip_set_id, network), [])
            holding = [g for g in gens if g.at - 1 <= t]
            if holding:
                latest_past_expiry = max(latest_past_expiry, t - max(g.expires_at for g in holding))
            if not any(g.at - 1 <= t and _in_bound(g.expires_at, t, uptime, stops) for g in gens):
                outlived.append({"t": t, "network": network, "blocks": [(g.at, g.expires_at) for g in gens]})
            if network not in seen:
                seen.add(network)
                if not gens or any(g.incident_id is None or g.incident_id not in items for g in gens):
                    unaudited.append({"network": network, "incidents": [g.incident_id for g in gens]})
    last_seen = observations[-1][0] if observations else 0.0
    if settled:
        outlived += [
            {"key": r.key, "status": r.status, "expires_at": r.expires_at}
            for r in records
            if r.in_set and not _in_bound(r.expires_at, last_seen, uptime, stops)
        ]

    per_hour: dict[str, int] = defaultdict(int)
    for gens in generations.values():
        for g in gens:
            per_hour[hour_key(g.at)] += 1
    over_cap = {hour: n for hour, n in per_hour.items() if n > PER_HOUR}

    generations_total = sum(len(g) for g in generations.values())
    return {
        "summary": {
            "blocks_opened": generations_total,
            "networks": len(generations),
            "in_force_at_end": sum(1 for r in records if r.in_set),
            "most_in_set_at_once": max((len(a) for _, a in observations), default=0),
            # The figure the bound is about: how long past its expiry a block was still seen.
            "max_seen_past_expiry_s": round(latest_past_expiry, 1),
            "bound_s": EXPIRY_BOUND_S,
            "observations": len(observations),
            "settled": settled,
        },
        "blocked_twice": twice[:_EXAMPLES],
        "blocked_twice_count": len(twice),
        "allowlisted_written": allowlisted[:_EXAMPLES],
        "allowlisted_written_count": len(allowlisted),
        "outlived_expiry": outlived[:_EXAMPLES],
        "outlived_expiry_count": len(outlived),
        "without_audit_or_incident": unaudited[:_EXAMPLES],
        "without_audit_or_incident_count": len(unaudited),
        "hourly_cap_exceeded": over_cap,
    }


def _in_bound(
    expires_at: float, t: float, uptime: list[tuple[float, float]] | None, stops: list[float]
) -> bool:
    """Whether a block seen at ``t`` is within its bound (see the module's docstring)."""
    if t <= expires_at + EXPIRY_BOUND_S:
        return True
    late = t - expires_at if uptime is None else _up_between(uptime, expires_at, t)
    killed = any(expires_at - EXPIRY_INTERVAL_S <= s <= t for s in stops)
    return late <= EXPIRY_BOUND_S + (EXPIRY_INTERVAL_S if killed else 0)


def worker_uptime(
    timeline: list[dict[str, Any]], evidence: list[Any]
) -> tuple[list[tuple[float, float]], list[float]]:
    """When workers were up (from their ``worker_started`` evidence to their exit) and
    when one was killed or stopped, from a run's timeline and evidence."""
    ready = {r["proc"]: r["t"] for r in evidence if r.get("kind") == "worker_started"}
    ended = {e["proc"]: e["t"] for e in timeline if e["event"] == "exit"}
    last = max((e["t"] for e in timeline), default=0.0)
    up = [(t, ended.get(proc, max(last, t))) for proc, t in ready.items()]
    stops = [e["t"] for e in timeline if e["event"] in ("sigkill", "sigterm")]
    return up, stops
