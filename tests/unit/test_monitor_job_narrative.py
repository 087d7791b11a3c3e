"""The monitor job asks for a model narrative only for a notice it is about to send, and
keeps it for that notice (docs/architecture.md, "Model fail-safe")."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

from secops_core.contract import MonitorResponse, Pattern, WafEvent
from tests.fixtures.fakes import FakeClock, FakeMonitor, FakeNotifier
from tests.unit.test_monitor_job import NOW, monitored
from worker.errors import RetryableError
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.pipeline.monitor_job import MonitorJob
from worker.store.memory import MemoryStore


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(clock=FakeClock(NOW.timestamp()))


class NarratingMonitor(FakeMonitor):
    """The fake monitor, writing a model narrative for the patterns a request names."""

    def monitor(
        self,
        events: Sequence[WafEvent],
        hours: int,
        threshold: int,
        now: datetime | None = None,
        narrate: Sequence[str] = (),
    ) -> MonitorResponse:
        response = super().monitor(events, hours, threshold, now, narrate)
        patterns = tuple(
            p.model_copy(
                update={
                    "narrative": f"model narrative #{self.calls}",
                    "narrative_by": "scripted-model",
                    "narrative_model_written": True,
                }
            )
            if p.pattern_key in narrate
            else p
            for p in response.patterns
        )
        return response.model_copy(update={"patterns": patterns, "model_calls": len(narrate)})


class KeepingNotifier(FakeNotifier):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[Pattern] = []

    def notify_pattern(self, pattern: Pattern, **kwargs: Any) -> str:
        message = super().notify_pattern(pattern, **kwargs)
        self.sent.append(pattern)
        return message


def job(store: MemoryStore, monitor: NarratingMonitor, notifier: FakeNotifier) -> MonitorJob:
    return MonitorJob(
        store=store,
        monitor_agent=monitor,
        notifier=notifier,
        incidents=IncidentJoiner(MemoryIncidentRepo(quiet_s=3600), window_s=0),
        owner="r1",
        interval_s=300,
        hours=24,
        threshold=5,
        growth_factor=2.0,
        chunk_size=100,
        now=lambda: NOW,
    )


def test_only_the_notified_pattern_gets_a_narrative_and_only_once(store: MemoryStore) -> None:
    # GIVEN one pattern over the threshold and one under it
    monitored(store, 6)
    monitored(store, 2, ip="203.0.113.9")
    monitor, notifier = NarratingMonitor(), KeepingNotifier()
    # WHEN two passes run
    job(store, monitor, notifier).run_once(force=True)
    job(store, monitor, notifier).run_once(force=True)
    # THEN the grouping requests named no pattern; one request named the notified one,
    # in the pass that sent its notice, and the notice carries the labelled narrative
    narrated = [keys for keys in monitor.narrated if keys]
    assert len(narrated) == 1 and narrated[0] == (notifier.sent[0].pattern_key,)
    assert len(notifier.sent) == 1
    assert notifier.sent[0].narrative_model_written and notifier.sent[0].narrative_by == "scripted-model"


def test_a_notice_retried_after_a_failed_publish_reuses_its_narrative(store: MemoryStore) -> None:
    # GIVEN a notice whose first publish fails
    monitored(store, 6)
    monitor = NarratingMonitor()
    notifier = KeepingNotifier(errors=[RetryableError("sns down", reason="notify_failed")])
    runner = job(store, monitor, notifier)
    with pytest.raises(RetryableError):
        runner.run_once(force=True)
    # WHEN the next pass sends it
    runner.run_once(force=True)
    # THEN the narrative was asked for once and the notice carries it
    assert len([keys for keys in monitor.narrated if keys]) == 1
    assert notifier.sent[0].narrative.startswith("model narrative")


def test_a_failed_narrative_request_sends_the_notice_with_the_template(store: MemoryStore) -> None:
    # GIVEN a runtime that fails the narrative request
    monitored(store, 6)

    class Failing(NarratingMonitor):
        def monitor(
            self,
            events: Sequence[WafEvent],
            hours: int,
            threshold: int,
            now: Any = None,
            narrate: Sequence[str] = (),
        ) -> MonitorResponse:
            if narrate:
                raise RetryableError("runtime 500", reason="runtime_http_500")
            return super().monitor(events, hours, threshold, now, narrate)

    notifier = KeepingNotifier()
    job(store, Failing(), notifier).run_once(force=True)
    # THEN the notice still goes out, with the template narrative, unlabelled
    assert len(notifier.sent) == 1 and not notifier.sent[0].narrative_model_written
