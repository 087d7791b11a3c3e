"""Incident channels on moto's server over HTTP: the chat card as Amazon Q Developer in
chat applications receives it (validated against docs/schemas/chat-notification.json,
with hostile input), and the fan-out through a real worker when one channel is broken.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from secops_core.contract import WafEvent
from secops_core.rules_analysis import rules_analysis
from secops_core.waf.floor import severity_floor
from testkit.events import waf_record
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from tests.fixtures.worker_process import cli_env, run_cli
from worker.daemon import Clients
from worker.incidents import OPENED, Contribution, Milestone
from worker.incidents.memory import MemoryIncidentRepo
from worker.incidents.records import IncidentRecord
from worker.notify.chat import MAX_MESSAGE_BYTES, ChatChannel
from worker.notify.sns import SnsPublisher
from worker.pipeline.processor import parse_message
from worker.platform.resources import setup_resources
from worker.settings import Settings
from worker.store.dynamodb import EventStore

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs/schemas/chat-notification.json").read_text())

# What an attacker controls, aimed at a chat client: mentions, links, markdown, code
# spans, control and invisible characters, and sheer size.
HOSTILE_URI = (
    "/login?next=http://evil.example/@channel <!here> <@U024BE7LH> `rm -rf` *bold* _it_ ~s~ "
    "[click](https://evil.example) <https://evil.example|Log in> <at>all</at> &lt;!channel&gt; "
    "\x00\x1b[31m\u202e\u200b\r\n# heading\n> quote | pipe " + "A" * 200_000
)
HOSTILE_RULE = "@here `SQLi` <!channel> [x](http://evil.example)\n" + "R" * 5000


def _topic_with_raw_tap(clients: Clients, name: str) -> tuple[str, str]:
    """A topic and a queue subscribed with raw delivery: the message as chat receives it."""
    arn = clients.sns.create_topic(Name=name)["TopicArn"]
    url = clients.sqs.create_queue(QueueName=f"{name}-tap")["QueueUrl"]
    queue_arn = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    clients.sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    return arn, url


def _received(clients: Clients, url: str) -> list[str]:
    bodies = []
    while batch := clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            bodies.append(message["Body"])
            clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _hostile_event() -> tuple[WafEvent, Any]:
    body = waf_record(counted=True, client_ip="203.0.113.66", uri="/login", request_id="1-hostile")
    event = parse_message(json.dumps(body)).event
    event = event.model_copy(update={"uri": HOSTILE_URI, "rule_name": HOSTILE_RULE})
    return event, rules_analysis(event, severity_floor(event))


def _incident(event: WafEvent, analysis: Any) -> IncidentRecord:
    repo = MemoryIncidentRepo(quiet_s=3600)
    contribution = Contribution.from_event(event, analysis)
    return repo.join(contribution.group("source"), [contribution]).record


def _assert_neutral(text: str) -> None:
    """Nothing in ``text`` a chat client would act on, beyond our own markup."""
    for forbidden in (
        "@channel",
        "@here",
        "<!",
        "<@",
        "<at>",
        "](",
        "<http",
        "&lt;",
        "http://evil",
        "https://evil",
    ):
        assert forbidden not in text, forbidden
    assert not re.search(r"[\x00-\x1f\x7f\u200b\u202e]", text.replace("\n", ""))
    for line in text.splitlines():
        assert line.count("`") % 2 == 0, f"unbalanced code span: {line!r}"


@pytest.mark.parametrize("milestone", [OPENED, Milestone("growth:10", "growth", "10 events (passed 10)")])
def test_the_chat_card_validates_and_neutralizes_hostile_input(
    aws_endpoint: str, unique: str, milestone: Milestone
) -> None:
    # GIVEN a chat topic, subscribed raw as Amazon Q Developer would read it, and an
    # incident whose URI and rule name an attacker wrote
    clients = Clients.from_settings(Settings(aws_region="us-east-1"))
    arn, tap = _topic_with_raw_tap(clients, f"chat-{unique}")
    event, analysis = _hostile_event()
    incident = _incident(event, analysis)
    channel = ChatChannel(topic_arn=arn, publisher=SnsPublisher(client=clients.sns))

    # WHEN the milestone is published
    message_id = channel.publish_incident(incident, milestone, event=event, analysis=analysis)

    # THEN the topic delivered one message: the documented schema, within its limits
    [body] = _received(clients, tap)
    assert message_id
    assert len(body.encode("utf-8")) <= MAX_MESSAGE_BYTES and body.isascii()
    card = json.loads(body)
    jsonschema.validate(card, SCHEMA)
    # AND every milestone of the incident lands in its thread
    assert card["metadata"]["threadId"] == incident.id
    assert card["metadata"]["additionalContext"]["milestone"] == milestone.id
    # AND nothing the attacker wrote can mention, link, format or break out of a code span
    content = card["content"]
    for text in (
        content["title"],
        content["description"],
        *content["nextSteps"],
        card["metadata"]["summary"],
    ):
        _assert_neutral(text)
    assert "hxxp://evil.example" in content["description"] or "hxxps://evil.example" in content["description"]


def test_the_chat_schema_refuses_what_chat_cannot_take() -> None:
    # GIVEN a valid card
    event, analysis = _hostile_event()
    from worker.notify.chat import chat_message

    card = chat_message(_incident(event, analysis), OPENED, event=event, analysis=analysis)
    jsonschema.validate(card, SCHEMA)
    # WHEN a field breaks a limit, THEN the schema says so
    for broken in (
        {**card, "version": "2.0"},
        {**card, "content": {**card["content"], "title": "x" * 251}},
        {**card, "content": {**card["content"], "nextSteps": ["step"] * 6}},
        {**card, "metadata": {**card["metadata"], "threadId": "has space"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, SCHEMA)


# ---- the fan-out through a real worker ------------------------------------------------------


@pytest.fixture
def broken_chat(aws_endpoint: str, unique: str, tmp_path: Path) -> Env:
    """A worker with SNS and chat enabled, chat's topic ARN pointing at no topic."""
    settings = fast_settings(
        unique,
        tmp_path,
        channels="sns,chat",
        chat_topic_arn=f"arn:aws:sns:us-east-1:123456789012:missing-{unique}",
    )
    return make_env(settings)


def test_a_broken_chat_channel_does_not_block_sns_and_is_reported(
    broken_chat: Env, aws_endpoint: str
) -> None:
    # GIVEN a scanner whose request reached the application (an escalation)
    env = broken_chat
    env.send([waf_record(counted=True, client_ip="203.0.113.66", request_id="1-fan-out")])

    # WHEN the worker processes it
    metrics = env.drain().metrics

    # THEN the opening reached the e-mail topic once, and the event is done
    [delivered] = env.delivered(env.critical_tap)
    assert delivered["Subject"].startswith("[SecOps] INCIDENT opened")
    assert env.queue_counts(env.resources.queue_url) == (0, 0)
    # AND each channel's outcome was counted under its name
    assert metrics.by_dimension("ChannelPublished", "Channel") == {"sns": 1}
    assert metrics.by_dimension("ChannelFailed", "Channel") == {"chat": 1}
    # AND `secops incidents show` reports chat's failure next to SNS's delivery
    listed = _json(run_cli("incidents", "list", "--json", env=cli_env(aws_endpoint, env.settings)))
    [incident] = listed["incidents"]
    view = _json(
        run_cli("incidents", "show", incident["id"], "--json", env=cli_env(aws_endpoint, env.settings))
    )
    channels = {c["channel"]: c for c in view["channels"]}
    assert channels["sns"]["last_delivered"]["milestone"] == "opened"
    assert channels["sns"]["last_delivered"]["id"] == delivered["MessageId"]
    assert channels["chat"]["last_delivered"] is None
    [failure] = channels["chat"]["failures"]
    assert failure["milestone"] == "opened" and failure["reason"] == "notify_topic_not_found"
    assert failure["undelivered"] is False and datetime.fromisoformat(failure["at"]) <= datetime.now(UTC)
    table = run_cli(
        "incidents", "show", incident["id"], env={**cli_env(aws_endpoint, env.settings), "COLUMNS": "200"}
    )
    assert table.returncode == 0, table.stderr
    assert "Channels" in table.stdout and "notify_topic_not_found" in table.stdout


def test_setup_creates_the_chat_topic_only_when_chat_is_enabled(
    aws_endpoint: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN two deployments, one with chat enabled
    for channels, expected in (("sns", None), ("sns,chat", f"chat-{unique}")):
        settings = fast_settings(unique, tmp_path, channels=channels, chat_topic_name=f"chat-{unique}")
        clients = Clients.from_settings(settings)
        store = EventStore(settings.table_name, client=clients.dynamodb)
        # WHEN `secops setup` runs
        resources, report = setup_resources(settings, sqs=clients.sqs, sns=clients.sns, store=store)
        # THEN the chat topic exists exactly when chat is enabled
        if expected is None:
            assert resources.chat_topic_arn is None and f"chat-{unique}" not in report
        else:
            assert resources.chat_topic_arn is not None and resources.chat_topic_arn.endswith(f":{expected}")
            assert report[expected] in {"created", "exists"}


def _json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.load(io.StringIO(result.stdout))


def test_resolve_again_resends_the_resolution_to_the_channels_that_failed_it(
    broken_chat: Env, aws_endpoint: str
) -> None:
    # GIVEN an incident opened while the chat topic was missing
    env = broken_chat
    env.send([waf_record(counted=True, client_ip="203.0.113.67", request_id="1-resend")])
    env.drain()
    cli = cli_env(
        aws_endpoint, env.settings, channels=env.settings.channels, chat_topic_arn=env.settings.chat_topic_arn
    )
    [incident] = _json(run_cli("incidents", "list", "--json", env=cli))["incidents"]

    # WHEN an operator resolves it: SNS takes the resolution, chat fails it again
    first = _json(run_cli("incidents", "resolve", incident["id"], "--json", env=cli))["notification"]
    assert first["sent"] is True
    assert [(c["channel"], c["ok"]) for c in first["channels"]] == [("sns", True), ("chat", False)]

    # WHEN the chat topic is fixed and the operator runs resolve again
    topic = env.settings.chat_topic_arn
    assert topic is not None
    arn, tap = _topic_with_raw_tap(env.clients, topic.rsplit(":", 1)[1])
    assert arn == topic
    again = _json(run_cli("incidents", "resolve", incident["id"], "--json", env=cli))["notification"]

    # THEN only chat is sent the resolution, in the incident's thread, and noted
    assert [(c["channel"], c["ok"]) for c in again["channels"]] == [("chat", True)]
    [card] = [json.loads(body) for body in _received(env.clients, tap)]
    assert (
        card["metadata"]["threadId"] == incident["id"]
        and card["metadata"]["additionalContext"]["milestone"] == "resolved"
    )
    resolutions = [e for e in env.delivered(env.critical_tap) if "resolved" in e["Subject"]]
    assert len(resolutions) == 1
    view = _json(run_cli("incidents", "show", incident["id"], "--json", env=cli))
    channels = {c["channel"]: c for c in view["channels"]}
    assert channels["chat"]["last_delivered"]["milestone"] == "resolved"
    assert channels["sns"]["last_delivered"]["milestone"] == "resolved"
    # AND a third resolve has nothing left to send: the usual conflict
    third = run_cli("incidents", "resolve", incident["id"], "--json", env=cli)
    assert third.returncode == 1 and "cannot be made resolved" in third.stderr
