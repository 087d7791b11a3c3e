"""EventBridgeChannel.publish_incident via botocore's Stubber: the request's shape, and
the per-entry failures and call errors moto cannot produce (throttled entries, denied
sources, internal failures), classified and retried within the budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber
from structlog.testing import capture_logs
from tenacity import wait_none

from tests.fixtures.incident_records import WEB_ACL_ARN, contribution, grow, waf_event
from tests.fixtures.moto_server import free_port
from worker.errors import ConfigurationError, RetryableError
from worker.incidents.milestones import OPENED
from worker.notify.eventbridge import EventBridgeChannel, EventBridgeRejected

BUS = "secops-incidents"
EVENT_ID = "11111111-2222-3333-4444-555555555555"
OK = {"FailedEntryCount": 0, "Entries": [{"EventId": EVENT_ID}]}


def failed(code: str, message: str = "nope") -> dict[str, Any]:
    return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": code, "ErrorMessage": message}]}


@pytest.fixture
def events() -> Any:
    # No endpoint is ever contacted: every call is answered by the Stubber.
    return boto3.client("events", region_name="us-east-1")


@pytest.fixture
def stubber(events: Any) -> Iterator[Stubber]:
    with Stubber(events) as stub:
        yield stub
        stub.assert_no_pending_responses()


def channel(events: Any, max_attempts: int = 3) -> EventBridgeChannel:
    return EventBridgeChannel(bus=BUS, client=events, max_attempts=max_attempts, wait=wait_none())


def publish(events: Any, max_attempts: int = 3) -> str:
    return channel(events, max_attempts).publish_incident(
        grow(None, contribution(1)), OPENED, event=waf_event()
    )


def test_the_request_is_one_entry_on_the_bus(events: Any, stubber: Stubber) -> None:
    # GIVEN EventBridge expects exactly this entry
    stubber.add_response(
        "put_events",
        OK,
        {
            "Entries": [
                {
                    "EventBusName": BUS,
                    "Source": "secops-worker",
                    "DetailType": "Incident Opened",
                    "Time": ANY,
                    "Detail": ANY,
                    "Resources": [WEB_ACL_ARN],
                }
            ]
        },
    )
    # WHEN a milestone is published  THEN the event id comes back
    assert publish(events) == EVENT_ID


def test_a_throttled_entry_is_retried_then_succeeds(events: Any, stubber: Stubber) -> None:
    # GIVEN the call succeeds but the entry is throttled, then internally failed, then taken
    stubber.add_response("put_events", failed("ThrottlingException", "Rate exceeded"))
    stubber.add_response("put_events", failed("InternalFailure"))
    stubber.add_response("put_events", OK)

    # WHEN published with a budget of 3
    with capture_logs() as logs:
        event_id = publish(events, max_attempts=3)

    # THEN the third attempt's event id comes back, and each retry was logged
    assert event_id == EVENT_ID
    retries = [entry for entry in logs if entry["event"] == "eventbridge.put_retry"]
    assert [r["error_code"] for r in retries] == ["ThrottlingException", "InternalFailure"]
    assert next(entry for entry in logs if entry["event"] == "eventbridge.put")["attempts"] == 3


def test_throttled_entries_past_the_budget_are_retryable(events: Any, stubber: Stubber) -> None:
    # GIVEN every attempt's entry is throttled
    for _ in range(2):
        stubber.add_response("put_events", failed("ThrottlingException"))

    # WHEN published with a budget of 2  THEN the message must come back later
    with pytest.raises(RetryableError) as raised:
        publish(events, max_attempts=2)
    assert raised.value.reason == "eventbridge_failed"
    assert "2 attempt(s)" in raised.value.message and "ThrottlingException" in raised.value.message


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("InternalException", 500)])
def test_a_throttled_or_failing_call_is_retried(
    events: Any, stubber: Stubber, code: str, status: int
) -> None:
    # GIVEN the call itself fails once, then succeeds
    stubber.add_client_error("put_events", service_error_code=code, http_status_code=status)
    stubber.add_response("put_events", OK)
    # WHEN published  THEN the retry succeeds
    assert publish(events) == EVENT_ID


@pytest.mark.parametrize(
    ("code", "reason", "hint"),
    [
        (
            "NotAuthorizedForSourceException",
            "eventbridge_not_authorized",
            "may not put source 'secops-worker'",
        ),
        ("NotAuthorizedForDetailTypeException", "eventbridge_not_authorized", "events:detail-type"),
        ("AccessDeniedException", "eventbridge_not_authorized", "events:PutEvents"),
        ("MalformedDetail", "eventbridge_invalid_event", "refused the event itself"),
        ("InvalidArgument", "eventbridge_invalid_event", "refused the event itself"),
        ("ResourceNotFoundException", "eventbridge_bus_not_found", "secops setup"),
        ("SomethingNew", "eventbridge_rejected", "refused the event"),
    ],
)
def test_a_refused_entry_is_a_configuration_error_at_once(
    events: Any, stubber: Stubber, code: str, reason: str, hint: str
) -> None:
    # GIVEN the entry is refused for a reason retrying cannot fix
    stubber.add_response("put_events", failed(code, "the message\nfrom AWS"))

    # WHEN published  THEN one attempt, then a configuration error naming reason and hint
    with pytest.raises(EventBridgeRejected) as raised:
        publish(events, max_attempts=5)
    assert isinstance(raised.value, ConfigurationError)
    assert (raised.value.reason, raised.value.code) == (reason, code)
    assert hint in raised.value.message and BUS in raised.value.message
    assert "\n" not in raised.value.message


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("AccessDeniedException", "eventbridge_not_authorized"),
        ("UnrecognizedClientException", "eventbridge_not_authorized"),
        ("ResourceNotFoundException", "eventbridge_bus_not_found"),
        ("ValidationException", "eventbridge_invalid_event"),
    ],
)
def test_a_refused_call_is_a_configuration_error_at_once(
    events: Any, stubber: Stubber, code: str, reason: str
) -> None:
    # GIVEN the call is refused with a 4xx
    stubber.add_client_error("put_events", service_error_code=code, http_status_code=400)
    # WHEN published  THEN it is not retried and says why
    with pytest.raises(EventBridgeRejected) as raised:
        publish(events, max_attempts=5)
    assert raised.value.reason == reason


def test_an_unreachable_endpoint_is_retryable() -> None:
    # GIVEN a client pointed at a closed port, making one attempt per call
    client = boto3.client(
        "events",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    # WHEN published with a budget of 2  THEN both attempts fail and the message comes back later
    with pytest.raises(RetryableError) as raised:
        publish(client, max_attempts=2)
    assert "2 attempt(s)" in raised.value.message
