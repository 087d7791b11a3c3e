"""SECOPS_LOCALSTACK=1: endpoint discovery through localstack-client, without LocalStack.

moto's server stands in for LocalStack's edge port: LOCALSTACK_HOST points at it, and a
real SQS call must reach it through the endpoint localstack-client derived.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.fixtures.worker_harness import fast_settings
from worker.daemon import Clients
from worker.platform import aws


@pytest.fixture
def localstack_host(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """LOCALSTACK_HOST=<moto's host:port>, and no standard endpoint variable set."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SNS", "USE_SSL"):
        monkeypatch.delenv(name, raising=False)
    host = moto_endpoint.removeprefix("http://")
    monkeypatch.setenv("LOCALSTACK_HOST", host)
    return moto_endpoint


def test_localstack_setting_points_every_client_at_the_discovered_edge(
    localstack_host: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN SECOPS_LOCALSTACK=1 and LOCALSTACK_HOST, but no AWS_ENDPOINT_URL
    settings = fast_settings(unique, tmp_path, localstack=True)

    # WHEN the worker builds its clients and makes a real call
    clients = Clients.from_settings(settings)
    url = clients.sqs.create_queue(QueueName=f"ls-{unique}")["QueueUrl"]

    # THEN all three talk to the endpoint localstack-client derived, and the call worked
    assert {c.meta.endpoint_url for c in (clients.sqs, clients.sns, clients.dynamodb)} == {localstack_host}
    assert url in clients.sqs.list_queues(QueueNamePrefix=f"ls-{unique}")["QueueUrls"]


def test_an_explicit_endpoint_variable_wins_over_localstack_discovery(
    localstack_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN AWS_ENDPOINT_URL_SQS chosen by the user
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:1")

    # THEN discovery stays out of SQS (botocore reads the variable) but serves SNS
    assert aws.localstack_endpoint("sqs") is None
    assert aws.localstack_endpoint("sns") == localstack_host
    assert aws.client("sqs", localstack=True).meta.endpoint_url == "http://127.0.0.1:1"


def test_without_the_setting_clients_keep_the_standard_chain(localstack_host: str) -> None:
    # LOCALSTACK_HOST alone changes nothing: the flag is the opt-in.
    client = aws.client("sqs", region="us-east-1")
    assert client.meta.endpoint_url == "https://sqs.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    "service",
    ["sqs", "sns", "dynamodb", "s3", "events", "securityhub", "sts", "bedrock-runtime", "bedrock-agentcore"],
)
def test_the_endpoint_variable_is_the_one_botocore_reads(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN only the variable this module names for the service, set to a loopback URL
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    name = aws.endpoint_variable(service)
    monkeypatch.setenv(name, "http://127.0.0.1:9")
    # THEN a client botocore builds for the service goes there: it is botocore's variable
    assert aws.client(service, region="us-east-1").meta.endpoint_url == "http://127.0.0.1:9", name


def test_eventbridge_s_variable_is_not_events(localstack_host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the user's EventBridge endpoint in the variable botocore reads for `events`
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:2")
    # THEN LocalStack discovery leaves the events client to it, instead of overriding it
    assert aws.endpoint_variable("events") == "AWS_ENDPOINT_URL_EVENTBRIDGE"
    assert aws.localstack_endpoint("events") is None
    assert aws.client("events", localstack=True).meta.endpoint_url == "http://127.0.0.1:2"


def test_a_misnamed_endpoint_variable_is_reported_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN AWS_ENDPOINT_URL_EVENTS (named after the client), which botocore does not read
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EVENTBRIDGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTS", "http://127.0.0.1:3")
    monkeypatch.setattr(aws, "_WARNED", set())
    # WHEN events clients are made
    with capture_logs() as logs:
        client = aws.client("events", region="us-east-1")
        aws.client("events", region="us-east-1")
    # THEN the client goes where botocore says (not the variable), and one warning names both
    assert client.meta.endpoint_url == "https://events.us-east-1.amazonaws.com"
    [warning] = [entry for entry in logs if entry["event"] == "endpoint_variable_not_read"]
    assert (warning["variable"], warning["reads"]) == (
        "AWS_ENDPOINT_URL_EVENTS",
        "AWS_ENDPOINT_URL_EVENTBRIDGE",
    )
    # AND nothing is reported once the right variable (or the global one) is set
    assert (
        aws.misnamed_endpoint_variable("events", {"AWS_ENDPOINT_URL_EVENTS": "x"})
        == "AWS_ENDPOINT_URL_EVENTS"
    )
    assert (
        aws.misnamed_endpoint_variable("events", {"AWS_ENDPOINT_URL_EVENTS": "x", "AWS_ENDPOINT_URL": "y"})
        is None
    )
    assert aws.misnamed_endpoint_variable("sqs", {"AWS_ENDPOINT_URL_SQS": "x"}) is None
