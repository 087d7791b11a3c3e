"""The response actions' chaos checks (chaos/blocks.py) on hand-made runs: a clean one
passes, and each broken invariant is caught with an example."""

from __future__ import annotations

from typing import Any

from chaos.blocks import EXPIRY_BOUND_S, check_blocks
from worker.response.records import BlockRecord, IpSetRef

V4 = IpSetRef(name="chaos-blocked-v4", id="set", scope="REGIONAL", version="IPV4")
T0 = 1_796_000_000.0


def item(
    network: str, *, incident: str | None = "inc#a#1", removed_at: float | None = T0 + 61
) -> dict[str, Any]:
    record = BlockRecord(
        network=network,
        address=network.split("/", maxsplit=1)[0],
        ip_set=V4,
        incident_id=incident,
        reason="r",
        decided_by="policy",
        created_at=T0,
        expires_at=T0 + 60,
    ).opened(None)
    if removed_at is not None:
        record = record.closed(now=removed_at, action="expired", by="scheduler", reason="over")
    fields = record.to_dict()
    return {"pk": record.key, **fields}


def run(items: list[dict[str, Any]], observations: list[tuple[float, list[str]]]) -> dict[str, Any]:
    table = {i["pk"]: i for i in items} | {"inc#a#1": {"pk": "inc#a#1"}}
    return check_blocks(table, observations, ip_set_id="set", settled=True)


def test_a_clean_run_passes() -> None:
    # GIVEN a block seen in the set during its period and gone after its expiry
    result = run([item("198.19.0.9/32")], [(T0 + 1, ["198.19.0.9/32"]), (T0 + 62, [])])
    # THEN every invariant holds
    assert result["blocked_twice_count"] == result["allowlisted_written_count"] == 0
    assert result["outlived_expiry_count"] == result["without_audit_or_incident_count"] == 0
    assert result["hourly_cap_exceeded"] == {}
    assert result["summary"]["blocks_opened"] == 1


def test_each_broken_invariant_is_caught() -> None:
    # GIVEN a set listing an address twice, an allowlisted one, one past its expiry, and
    # one whose record names an incident the table does not hold
    items = [item("198.19.0.9/32"), item("198.19.0.10/32", incident="inc#gone#1")]
    observations = [
        (T0 + 1, ["198.19.0.9/32", "198.19.0.9/32"]),
        (T0 + 2, ["198.18.0.5/32"]),
        (T0 + 60 + EXPIRY_BOUND_S + 5, ["198.19.0.9/32"]),
        (T0 + 3, ["198.19.0.10/32"]),
    ]
    # WHEN the run is checked
    result = run(items, observations)
    # THEN each is reported
    assert result["blocked_twice_count"] == 1
    assert result["allowlisted_written"] == ["198.18.0.5/32"]
    assert {e.get("network") for e in result["outlived_expiry"]} >= {"198.19.0.9/32", "198.18.0.5/32"}
    assert [e["network"] for e in result["without_audit_or_incident"]] == ["198.18.0.5/32", "198.19.0.10/32"]


def test_time_without_a_live_worker_and_a_killed_holder_are_allowed_for() -> None:
    # GIVEN a block seen 45 s past its expiry, while no worker was up for 20 of them
    items = [item("198.19.0.9/32", removed_at=T0 + 106)]
    seen = [(T0 + 105, ["198.19.0.9/32"])]
    table = {i["pk"]: i for i in items} | {"inc#a#1": {"pk": "inc#a#1"}}
    down = [(T0, T0 + 70), (T0 + 90, T0 + 200)]
    # WHEN it is checked with and without the downtime, and with a kill meanwhile
    always_up = check_blocks(table, seen, ip_set_id="set", settled=True)
    with_downtime = check_blocks(table, seen, ip_set_id="set", settled=True, up=down)
    # THEN the downtime is not the pass's lateness
    assert always_up["outlived_expiry_count"] == 1
    assert with_downtime["outlived_expiry_count"] == 0
