"""The chaos checks catch what they claim to catch (synthetic runs, no processes)."""

from __future__ import annotations

import json
from typing import Any

from chaos.invariants import Checker, Delivery, QueueMessage, RunData, SentMessage
from chaos.plan import Plan, PlannedMessage
from testkit.events import simplified

T0 = 1_700_000_000.0
KEY = "evt#e1"
INCIDENT = "inc#g1#1"
OPENED = {"milestone": {"id": "opened"}}


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def _incident(
    incident: str = INCIDENT, *, group: str = "g1", count: int = 1, **fields: Any
) -> dict[str, Any]:
    return {
        "pk": incident,
        "group_hash": group,
        "count": count,
        "status": "open",
        "first_seen": "2023-11-14T22:13:20.000000Z",
        "open_until": "2023-11-14T23:13:20.000000Z",
        **fields,
    }


def _run(**overrides: Any) -> RunData:
    """One escalated event, analyzed at +2 s, that opened an incident whose opening w0.1
    claimed at +2.9 s and published at +3 s, and linked at +3.1 s."""
    event = PlannedMessage(0.0, "{}", KEY, "event", "escalation", "escalated", 4)
    poison = PlannedMessage(0.0, "not json", "msg#sha256:p", "poison", "not_json", None, None)
    data: dict[str, Any] = {
        "plan": Plan((event, poison)),
        "sent": [SentMessage(event, "m1", T0), SentMessage(poison, "m2", T0)],
        "items": {
            KEY: {
                "pk": KEY,
                "status": "escalated",
                "severity_rating": 4,
                "analyzed_at": _iso(T0 + 2),
                "notified_at": _iso(T0 + 3.1),
                "notification_id": "sns-1",
                "incident_id": INCIDENT,
            },
            INCIDENT: _incident(),
            "msg#sha256:p": {"pk": "msg#sha256:p", "status": "rejected", "rejection_code": "invalid_json"},
        },
        "dlq": [QueueMessage("m2", "not json", 8)],
        "left_in_queue": 0,
        "critical": [Delivery("sns-1", INCIDENT, T0 + 3, OPENED)],
        "monitoring": [],
        "evidence": [
            _ev(1.5, "w0.1", "model_call", key=KEY, action="analyze"),
            _ev(2.8, "w0.1", "milestone_claimed", key=INCIDENT, milestone="opened", won=True),
            _ev(2.9, "w0.1", "publish_start", key=INCIDENT),
            _ev(3.0, "w0.1", "published", key=INCIDENT, message_id="sns-1"),
            _ev(3.1, "w0.1", "marked", key=KEY, message_id="sns-1", marked=True),
        ],
        "timeline": [],
        "sigterm": None,
        "drained": True,
        "t0": T0,
    }
    data.update(overrides)
    return RunData(**data)


def _ev(t: float, proc: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"t": T0 + t, "proc": proc, "pid": 1, "kind": kind, **fields}


def _failed(data: RunData) -> set[str]:
    report = Checker(data).report()
    return {name for name, check in report["invariants"].items() if not check["ok"]}


def test_a_clean_run_passes() -> None:
    assert _failed(_run()) == set()


def test_a_milestone_delivered_twice_is_a_duplicate() -> None:
    # GIVEN another worker published the incident's opening again
    data = _run()
    data.critical.append(Delivery("sns-2", INCIDENT, T0 + 5, OPENED))
    # THEN it is a duplicate notification
    assert _failed(data) == {"duplicate_notifications"}
    # AND a later milestone of the same incident is not
    data.critical[1] = Delivery("sns-2", INCIDENT, T0 + 5, {"milestone": {"id": "growth:10"}})
    assert _failed(data) == set()


def test_an_opening_whose_claimer_was_killed_before_publishing_is_in_the_window() -> None:
    # GIVEN the opening's claimer was SIGKILLed before it published
    data = _run(critical=[], timeline=[{"t": T0 + 3.5, "event": "sigkill", "proc": "w0.1", "pid": 2}])
    data.evidence = [r for r in data.evidence if r["kind"] not in ("publish_start", "published")]
    # THEN the run passes and reports the lost opening apart
    report = Checker(data).report()
    assert report["ok"] is True
    assert report["notifications"]["openings_lost_in_claim_publish_window"] == 1
    assert report["notifications"]["in_window_by_cause"] == {"killed_after_claim": 1}


def test_an_incident_never_notified_fails() -> None:
    # GIVEN an incident whose opening was claimed by a live worker and never delivered
    data = _run(critical=[])
    # THEN it fails
    assert _failed(data) == {"incidents_never_notified"}


def test_an_incident_that_counted_an_event_twice_fails() -> None:
    data = _run()
    data.items[INCIDENT]["count"] = 2
    assert _failed(data) == {"incidents_miscounted"}


def test_two_incidents_open_for_one_key_and_window_fail() -> None:
    # GIVEN a second incident of the same group, open over the same window, with its own event
    data = _run()
    second = "inc#g1#2"
    data.items[second] = _incident(second)
    data.items["evt#e2"] = {"pk": "evt#e2", "status": "escalated", "incident_id": second}
    data.critical.append(Delivery("sns-3", second, T0 + 6, OPENED))
    # THEN it was opened twice
    assert _failed(data) == {"incidents_opened_twice"}


def test_a_model_call_after_the_saved_analysis_fails() -> None:
    data = _run()
    data.evidence.append(_ev(2.5, "w1.1", "model_call", key=KEY, action="analyze"))
    assert _failed(data) == {"model_calls_after_analysis_saved"}


def test_a_message_neither_terminal_nor_in_the_dlq_is_lost() -> None:
    data = _run(dlq=[])
    data.items[KEY]["status"] = "analyzed"
    assert {"events_lost"} <= _failed(data)


def test_one_slot_run_by_two_live_workers_fails() -> None:
    data = _run()
    lock = "lock#monitor#2024-01-01T00:00:10Z"
    data.items[lock] = {"pk": lock, "owner": "b", "completed_at": _iso(T0 + 12)}
    data.evidence += [
        _ev(10.1, "w0.1", "lock_acquired", lock=lock, owner="a"),
        _ev(10.5, "w1.1", "lock_acquired", lock=lock, owner="b"),
    ]
    assert _failed(data) == {"monitor_slots_run_more_than_once"}


def test_an_escalation_without_an_incident_fails() -> None:
    data = _run()
    data.items["evt#e2"] = {
        "pk": "evt#e2",
        "status": "escalated",
        "notified_at": _iso(T0 + 20),
        "notification_id": "pattern:pat#1",
    }
    assert _failed(data) == {"escalations_without_incident"}


def test_a_sigterm_drain_that_overruns_or_fails_is_caught() -> None:
    drain = {
        "worker": "w0.1",
        "exit_code": 0,
        "run_worker_returned_after_s": 4.0,
        "stop_bound_s": 9.0,
        "exited_after_s": 6.0,
        "exit_bound_s": 13.0,
    }
    assert _failed(_run(sigterm=drain)) == set()
    assert _failed(_run(sigterm=drain | {"run_worker_returned_after_s": 12.0})) == {
        "sigterm_drain_exit_0_in_time"
    }
    assert _failed(_run(sigterm=drain | {"exit_code": 1})) == {"sigterm_drain_exit_0_in_time"}


def test_a_valid_event_in_the_dlq_fails() -> None:
    # GIVEN the event's message ran out of receives while its record stayed in processing
    body = json.dumps(simplified("e1"))
    data = _run(dlq=[QueueMessage("m1", body, 9), QueueMessage("m2", "not json", 8)])
    data.items[KEY] = {"pk": KEY, "status": "processing"}
    data.items.pop(INCIDENT)
    # THEN the run fails on it, though the message is accounted for (not lost)
    assert _failed(data) == {"valid_events_dead_lettered"}


def test_a_pattern_notified_twice_at_one_count_is_a_duplicate() -> None:
    document = {"pattern": {"count": 6}}
    data = _run(
        monitoring=[Delivery("p1", "pat#1", T0 + 10, document), Delivery("p2", "pat#1", T0 + 20, document)]
    )
    assert _failed(data) == {"duplicate_notifications"}
    # Notified again only once it grew: fine.
    data.monitoring[1] = Delivery("p2", "pat#1", T0 + 20, {"pattern": {"count": 12}})
    assert _failed(data) == set()


def test_slot_completion_counts_slots_first_taken_under_faults() -> None:
    # GIVEN four slots: two completed by faulty workers (one after a takeover), one left
    # open by a worker killed holding it, one left open by a fault; and a drain slot
    data = _run()
    slots = [f"lock#monitor#2024-01-01T00:00:{s}0Z" for s in range(5)]
    data.items |= {
        slots[0]: {"pk": slots[0], "completed_at": _iso(T0 + 1)},
        slots[1]: {"pk": slots[1], "completed_at": _iso(T0 + 30)},
        slots[2]: {"pk": slots[2]},
        slots[3]: {"pk": slots[3]},
        slots[4]: {"pk": slots[4], "completed_at": _iso(T0 + 50)},
    }
    data.evidence += [
        _ev(0.5, "w0.1", "lock_acquired", lock=slots[0]),
        _ev(10.5, "w1.1", "lock_acquired", lock=slots[1]),
        _ev(29.0, "w0.2", "lock_acquired", lock=slots[1]),
        _ev(20.5, "w0.1", "lock_acquired", lock=slots[2]),
        _ev(30.5, "w1.1", "lock_acquired", lock=slots[3]),
        _ev(40.5, "d0.1", "lock_acquired", lock=slots[4]),
    ]
    data.timeline = [{"t": T0 + 21, "proc": "w0.1", "event": "sigkill"}]

    # WHEN the run is checked
    slots_done = Checker(data).report()["monitor"]["slots_completed_under_faults"]

    # THEN the drain's slot is left out, the killed holder's slot is counted apart, and
    # the slot a fault cost makes the share of the rest (2 of 3) miss the 90 % target
    assert (slots_done["completed"], slots_done["total"], slots_done["share"]) == (2, 4, 0.5)
    assert (slots_done["open_holder_killed"], slots_done["share_holder_lived"]) == (1, 0.667)
    assert not slots_done["met"]
    assert slots_done["open"] == [slots[2], slots[3]]


def test_slot_completion_meets_its_target_when_only_kills_left_slots_open() -> None:
    # GIVEN nine slots taken under faults: six completed, two left by killed holders and
    # one by a holder stopped by SIGTERM
    data = _run()
    slots = [f"lock#monitor#2024-01-01T00:0{s}:00Z" for s in range(9)]
    for n, name in enumerate(slots):
        data.items[name] = {"pk": name} | ({"completed_at": _iso(T0 + n * 10 + 1)} if n < 6 else {})
        data.evidence.append(_ev(n * 10 + 0.5, f"w{n % 3}.1", "lock_acquired", lock=name))
    data.timeline = [
        {"t": T0 + 61, "proc": "w0.1", "event": "sigterm"},
        {"t": T0 + 71, "proc": "w1.1", "event": "sigkill"},
        {"t": T0 + 81, "proc": "w2.1", "event": "sigkill"},
    ]
    # WHEN the run is checked
    slots_done = Checker(data).report()["monitor"]["slots_completed_under_faults"]
    # THEN 6 / 9 completed, and every slot whose holder lived: the target is met
    assert (slots_done["completed"], slots_done["total"]) == (6, 9)
    assert (slots_done["open_holder_killed"], slots_done["open_holder_shut_down"]) == (2, 1)
    assert slots_done["share_holder_lived"] == 1.0 and slots_done["met"]


def test_an_opening_claimed_by_a_process_that_left_no_evidence_fails_with_its_cause() -> None:
    # GIVEN an incident whose opening was claimed (its item says so) by a process that
    # stopped before writing its evidence, and never published
    data = _run(critical=[])
    data.evidence = [r for r in data.evidence if r["kind"] != "milestone_claimed"]
    data.items[INCIDENT]["claimed"] = ["opened"]
    # THEN the run fails, naming the cause
    report = Checker(data).report()
    check = report["invariants"]["incidents_never_notified"]
    assert not check["ok"] and check["examples"][0]["cause"] == "claimed_by_a_stopped_process"


def _pattern_escalated(**fields: Any) -> RunData:
    """A monitored event (floor 3) that its pattern escalated to 4 and linked to the incident."""
    data = _run()
    data.plan = Plan(
        (PlannedMessage(0.0, "{}", KEY, "event", "monitor", "monitoring", 3), data.plan.messages[1])
    )
    item = data.items[KEY]
    raised = json.dumps({"to": 4, "by": "monitor", "reason": "pattern over threshold"})
    item.update(
        {
            "severity_rating": 4,
            "analysis": json.dumps({"severity_rating": 3}),
            "pattern_key": "pat#1",
            "severity_raised": raised,
            **fields,
        }
    )
    return data


def test_a_pattern_escalation_raises_the_severity_with_its_reason() -> None:
    # GIVEN a monitored event whose pattern escalated it: one severity (4), the raise recorded,
    # the analysis still at the floor
    # THEN the triage is as planned
    assert "wrong_triage" not in _failed(_pattern_escalated())
    # BUT a raise the record does not explain, or an analysis off the floor, is wrong
    assert "wrong_triage" in _failed(_pattern_escalated(severity_raised=None))
    assert "wrong_triage" in _failed(_pattern_escalated(analysis=json.dumps({"severity_rating": 4})))
