"""The fan-out over incident channels: one channel failing never blocks the others, a
milestone some channel took counts as sent (failures recorded, not raised), and one no
channel took gives its claim back (docs/architecture.md, "Incidents").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from testkit.events import simplified
from tests.fixtures.fakes import FakeAgents, FakeClock
from worker.errors import ConfigurationError, RetryableError
from worker.incidents import OPENED, Contribution, IncidentRecord, Milestone
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.notify.channel import ChannelName, ChannelResult, ChannelsRejected, ChannelsUnavailable
from worker.notify.fanout import UNEXPECTED_REASON, FanoutNotifier
from worker.notify.sns import SnsNotifier
from worker.pipeline.processor import EventProcessor
from worker.platform.metrics import Metrics
from worker.settings import CHANNEL_CHOICES, Settings
from worker.store.memory import MemoryStore

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC).timestamp()


@dataclass
class ScriptedChannel:
    """A channel whose answers are scripted: an exception is raised, a string returned."""

    channel: ChannelName
    answers: list[BaseException | str] = field(default_factory=list)
    published: list[tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> ChannelName:
        return self.channel

    def publish_incident(
        self, incident: IncidentRecord, milestone: Milestone, *, event: object = None, analysis: object = None
    ) -> str:
        answer = self.answers.pop(0) if self.answers else f"{self.channel}-{len(self.published) + 1}"
        if isinstance(answer, BaseException):
            raise answer
        self.published.append((incident.id, milestone.id))
        return answer


def fanout(*channels: ScriptedChannel, metrics: Metrics | None = None) -> FanoutNotifier:
    # Escalations and patterns are not published in these tests: the SNS notifier's
    # client is never called.
    sns = SnsNotifier(monitoring_topic_arn="arn:monitoring", client=object())
    return FanoutNotifier(channels=list(channels), sns=sns, metrics=metrics)


@pytest.fixture
def incident() -> IncidentRecord:
    repo = MemoryIncidentRepo(quiet_s=3600, clock=FakeClock(T0))
    contribution = Contribution(
        event_key="evt#e1",
        at=datetime.fromtimestamp(T0, UTC),
        severity=5,
        attack_class="sqli",
        source_ip="198.51.100.23",
        reached_app=False,
        rule="SQLi_BODY",
        uri_template="/login",
    )
    return repo.join(contribution.group("source"), [contribution]).record


def test_one_channel_failing_never_blocks_the_others(incident: IncidentRecord) -> None:
    # GIVEN three channels: SNS takes the milestone, chat's topic is gone, the third has a bug
    sns = ScriptedChannel("sns")
    chat = ScriptedChannel(
        "chat", [ConfigurationError("chat topic not found", reason="notify_topic_not_found")]
    )
    broken = ScriptedChannel("eventbridge", [KeyError("detail")])
    metrics = Metrics(enabled=False)
    # WHEN a milestone is published
    delivery = fanout(sns, chat, broken, metrics=metrics).notify_incident(incident, OPENED)
    # THEN SNS has it, the failures are returned in channel order, nothing is raised
    assert sns.published == [(incident.id, "opened")]
    assert delivery.message_id == "sns-1"
    assert [(r.channel, r.ok, r.reason) for r in delivery.results] == [
        ("sns", True, None),
        ("chat", False, "notify_topic_not_found"),
        ("eventbridge", False, UNEXPECTED_REASON),
    ]
    assert delivery.results[2].error is not None and "KeyError" in delivery.results[2].error
    # AND each channel's outcome is counted under its name
    assert metrics.by_dimension("ChannelPublished", "Channel") == {"sns": 1}
    assert metrics.by_dimension("ChannelFailed", "Channel") == {"chat": 1, "eventbridge": 1}


def test_the_message_id_is_the_first_channel_that_took_it(incident: IncidentRecord) -> None:
    # GIVEN SNS failing past its budget and chat taking the milestone
    sns = ScriptedChannel("sns", [RetryableError("throttled", reason="notify_failed")])
    chat = ScriptedChannel("chat", ["chat-msg"])
    # WHEN it is published
    delivery = fanout(sns, chat).notify_incident(incident, OPENED)
    # THEN chat's id is the delivery's
    assert delivery.message_id == "chat-msg"
    assert delivery.failed == (
        ChannelResult("sns", ok=False, reason="notify_failed", error="RetryableError: throttled"),
    )


def test_every_channel_failing_is_retryable_when_one_failure_may_pass(incident: IncidentRecord) -> None:
    # GIVEN one channel misconfigured and one throttled past its budget
    sns = ScriptedChannel("sns", [ConfigurationError("denied", reason="notify_not_authorized")])
    chat = ScriptedChannel("chat", [RetryableError("throttled", reason="notify_failed")])
    # WHEN a milestone is published
    with pytest.raises(ChannelsUnavailable) as raised:
        fanout(sns, chat).notify_incident(incident, OPENED)
    # THEN it is a retryable error carrying both outcomes
    assert isinstance(raised.value, RetryableError) and raised.value.reason == "notify_failed"
    assert [(r.channel, r.reason) for r in raised.value.results] == [
        ("sns", "notify_not_authorized"),
        ("chat", "notify_failed"),
    ]


def test_every_channel_misconfigured_is_a_configuration_error(incident: IncidentRecord) -> None:
    # GIVEN two channels refused for good
    sns = ScriptedChannel("sns", [ConfigurationError("no topic", reason="notify_topic_not_found")])
    chat = ScriptedChannel("chat", [ConfigurationError("denied", reason="notify_not_authorized")])
    # WHEN a milestone is published
    with pytest.raises(ChannelsRejected) as raised:
        fanout(sns, chat).notify_incident(incident, OPENED)
    # THEN it is a configuration error named after the first channel's reason
    assert isinstance(raised.value, ConfigurationError)
    assert raised.value.reason == "notify_topic_not_found"
    assert "sns: notify_topic_not_found" in raised.value.message


def test_one_channel_failing_alone_keeps_its_own_error(incident: IncidentRecord) -> None:
    # GIVEN the default deployment: SNS alone, refused
    sns = ScriptedChannel(
        "sns", [ConfigurationError("SNS refused: no topic", reason="notify_topic_not_found")]
    )
    # WHEN a milestone is published
    with pytest.raises(ChannelsRejected) as raised:
        fanout(sns).notify_incident(incident, OPENED)
    # THEN the error reads as SNS's own, as before there were channels
    assert (raised.value.message, raised.value.reason) == ("SNS refused: no topic", "notify_topic_not_found")


def test_a_channel_cannot_be_enabled_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        fanout(ScriptedChannel("sns"), ScriptedChannel("sns"))
    with pytest.raises(ValueError, match="at least one"):
        fanout()


def test_the_settings_know_every_channel_of_the_seam() -> None:
    from worker.notify.channel import CHANNEL_NAMES

    assert CHANNEL_CHOICES == CHANNEL_NAMES


def test_every_channel_name_has_a_builder_and_a_readme_entry() -> None:
    # GIVEN the one list of channel names
    from pathlib import Path

    from worker.notify.names import CHANNEL_NAMES
    from worker.notify.registry import BUILDERS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `SECOPS_CHANNELS`"))
    # THEN the fan-out can build each, and the settings table names each
    assert set(BUILDERS) == set(CHANNEL_NAMES)
    assert [name for name in CHANNEL_NAMES if f"`{name}`" not in row] == []


# ---- through the pipeline -----------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def repo(clock: FakeClock) -> MemoryIncidentRepo:
    return MemoryIncidentRepo(quiet_s=3600, clock=clock)


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


def processor(store: MemoryStore, repo: MemoryIncidentRepo, notifier: FanoutNotifier) -> EventProcessor:
    agents = FakeAgents()
    agents.analyst.severity = 5
    return EventProcessor(
        store=store,
        agents=agents,
        notifier=notifier,
        incidents=IncidentJoiner(repo, window_s=0),
        owner="w1",
        lease_s=60,
        metrics=Metrics(enabled=False),
    )


def body(event_id: str) -> str:
    return json.dumps(simplified(event_id))


def test_a_milestone_one_channel_took_is_sent_once_and_its_failures_recorded(
    store: MemoryStore, repo: MemoryIncidentRepo
) -> None:
    # GIVEN SNS working and chat misconfigured
    sns = ScriptedChannel("sns")
    chat = ScriptedChannel("chat", [ConfigurationError("no chat topic", reason="notify_topic_not_found")])
    worker = processor(store, repo, fanout(sns, chat))
    # WHEN an escalated event opens an incident, and its message is delivered again
    first = worker.process(body("e1"), "m1")
    worker.process(body("e1"), "m1")
    # THEN the event is done, SNS got the opening once, and the incident says chat failed it
    assert first.kind != "retry"
    record = store.get("evt#e1")
    assert record is not None and record.incident_id is not None and record.notification_id == "sns-1"
    assert sns.published == [(record.incident_id, "opened")]
    incident = repo.get(record.incident_id)
    assert incident is not None and incident.claimed == frozenset({"opened"})
    (notice,) = incident.notices
    assert [(c.channel, c.ok, c.reason) for c in notice.channels] == [
        ("sns", True, None),
        ("chat", False, "notify_topic_not_found"),
    ]


def test_a_channel_that_failed_a_milestone_gets_the_next_one(
    store: MemoryStore, repo: MemoryIncidentRepo
) -> None:
    # GIVEN chat down for the opening of an incident
    sns = ScriptedChannel("sns")
    chat = ScriptedChannel("chat", [RetryableError("throttled", reason="notify_failed")])
    worker = processor(store, repo, fanout(sns, chat))
    worker.process(body("e0"), "m0")
    # WHEN the incident grows past its next milestone
    for n in range(1, 10):
        worker.process(body(f"e{n}"), f"m{n}")
    # THEN chat gets that milestone, which carries the incident's totals
    record = store.get("evt#e0")
    assert record is not None and record.incident_id is not None
    assert chat.published == [(record.incident_id, "growth:10")]
    assert sns.published == [(record.incident_id, "opened"), (record.incident_id, "growth:10")]


def test_a_milestone_no_channel_took_is_given_back_and_retried(
    store: MemoryStore, repo: MemoryIncidentRepo
) -> None:
    # GIVEN both channels failing for the first delivery
    sns = ScriptedChannel("sns", [RetryableError("throttled", reason="notify_failed")])
    chat = ScriptedChannel("chat", [RetryableError("throttled", reason="notify_failed")])
    worker = processor(store, repo, fanout(sns, chat))
    # WHEN an escalated event opens an incident
    outcome = worker.process(body("e1"), "m1")
    # THEN the message is retried, the claim is free, and the failure is on the incident
    assert outcome.kind == "retry" and outcome.reason == "notify_failed"
    (incident,) = repo.list()
    assert incident.claimed == frozenset() and incident.notices == ()
    assert incident.last_failure is not None and incident.last_failure.milestone == "opened"
    assert {c.channel for c in incident.last_failure.channels} == {"sns", "chat"}
    # WHEN the message comes back and the channels work again
    worker.process(body("e1"), "m1")
    # THEN the opening is sent once to each
    assert sns.published == chat.published == [(incident.id, "opened")]
    done = repo.get(incident.id)
    assert done is not None and [n.milestone for n in done.notices] == ["opened"]


# ---- the factory ----------------------------------------------------------------------------


@dataclass
class _Clients:
    sns: object


def test_every_channel_is_built_by_its_name_in_the_configured_order() -> None:
    from worker.notify.registry import build_channels
    from worker.platform.resources import Resources

    # GIVEN every channel enabled, in an order of the operator's choosing
    settings = Settings(aws_region="us-east-1", channels="eventbridge, chat,securityhub,sns,chat")
    resources = Resources("url", None, "arn:critical", "arn:monitoring", "t", chat_topic_arn="arn:chat")
    # WHEN the worker builds its channels (no AWS call is made to build them)
    channels = build_channels(settings, clients=_Clients(sns=object()), resources=resources)
    # THEN each is there once, in that order
    assert [c.name for c in channels] == ["eventbridge", "chat", "securityhub", "sns"]


def test_an_unknown_channel_or_none_is_refused_at_start_up() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown channel"):
        Settings(channels="sns,pager")
    with pytest.raises(ValidationError, match="at least one channel"):
        Settings(channels=" , ")


def test_chat_without_a_topic_is_a_configuration_error() -> None:
    from worker.notify.registry import build_channels
    from worker.platform.resources import Resources

    settings = Settings(aws_region="us-east-1", channels="sns,chat")
    resources = Resources("url", None, "arn:critical", "arn:monitoring", "t")
    with pytest.raises(ConfigurationError, match="SECOPS_CHAT_TOPIC_ARN"):
        build_channels(settings, clients=_Clients(sns=object()), resources=resources)


def test_a_resend_goes_to_the_named_channels_only(incident: IncidentRecord) -> None:
    # GIVEN SNS and chat enabled
    sns, chat = ScriptedChannel("sns"), ScriptedChannel("chat")
    notifier = fanout(sns, chat)
    # WHEN a milestone is resent to chat alone
    delivery = notifier.notify_incident(incident, OPENED, only=("chat",))
    # THEN SNS is not asked again
    assert sns.published == [] and chat.published == [(incident.id, "opened")]
    assert [r.channel for r in delivery.results] == ["chat"]
    with pytest.raises(ValueError, match="no enabled channel"):
        notifier.notify_incident(incident, OPENED, only=("securityhub",))


def test_show_reports_each_channel_s_last_delivery_and_failures(
    store: MemoryStore, repo: MemoryIncidentRepo, clock: FakeClock
) -> None:
    from worker.cli.incidents import channel_report, timeline

    # GIVEN an incident whose opening chat failed, then a growth milestone no channel took
    sns = ScriptedChannel("sns", ["sns-1", RetryableError("throttled", reason="notify_failed")])
    chat = ScriptedChannel(
        "chat",
        [
            ConfigurationError("no chat topic", reason="notify_topic_not_found"),
            RetryableError("throttled", reason="notify_failed"),
        ],
    )
    worker = processor(store, repo, fanout(sns, chat))
    for n in range(10):
        clock.advance(1)
        worker.process(body(f"e{n}"), f"m{n}")
    (incident,) = repo.list()
    # WHEN the operator's view is built
    report = {c["channel"]: c for c in channel_report(incident)}
    whats = [e["what"] for e in timeline(incident)]
    # THEN SNS last delivered the opening; chat never delivered, and failed both
    assert report["sns"]["last_delivered"]["milestone"] == "opened"
    assert [(f["milestone"], f["reason"], f["undelivered"]) for f in report["sns"]["failures"]] == [
        ("growth:10", "notify_failed", True)
    ]
    assert report["chat"]["last_delivered"] is None
    assert [(f["milestone"], f["reason"], f["undelivered"]) for f in report["chat"]["failures"]] == [
        ("opened", "notify_topic_not_found", False),
        ("growth:10", "notify_failed", True),
    ]
    # AND the timeline says which notification was delivered and which was not
    assert "notified: opened" in whats and "not delivered: growth:10" in whats
