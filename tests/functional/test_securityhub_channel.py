"""The Security Hub channel's requests and error handling, through botocore's Stubber:
the failures moto cannot produce (Security Hub not enabled, access denied, throttling,
per-finding failures in a 200 answer) and BatchUpdateFindings, which moto lacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from structlog.testing import capture_logs
from tenacity import wait_none

from tests.unit.test_incident_rules import T0, contribution, opened
from worker.errors import ConfigurationError, RetryableError
from worker.incidents.milestones import OPENED, RESOLVED
from worker.incidents.records import StatusChange
from worker.notify.asff import finding_id
from worker.notify.channel import IncidentChannel
from worker.notify.securityhub import FindingRejected, SecurityHubChannel
from worker.settings import Settings

ACCOUNT = "111122223333"
PRODUCT = f"arn:aws:securityhub:eu-west-1:{ACCOUNT}:product/{ACCOUNT}/default"
IMPORTED = {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []}
INCIDENT = opened(contribution(1))
FINDING_ID = finding_id(INCIDENT)


def failed(code: str, message: str = "nope") -> dict[str, Any]:
    return {
        "FailedCount": 1,
        "SuccessCount": 0,
        "FailedFindings": [{"Id": FINDING_ID, "ErrorCode": code, "ErrorMessage": message}],
    }


@pytest.fixture
def securityhub() -> Any:
    # No endpoint is ever contacted: every call is answered by the Stubber.
    return boto3.client("securityhub", region_name="eu-west-1")


@pytest.fixture
def stubber(securityhub: Any) -> Iterator[Stubber]:
    with Stubber(securityhub) as stub:
        yield stub
        stub.assert_no_pending_responses()


def channel(securityhub: Any, max_attempts: int = 3, **kwargs: Any) -> SecurityHubChannel:
    return SecurityHubChannel(
        client=securityhub,
        account_id=ACCOUNT,
        max_attempts=max_attempts,
        wait=wait_none(),
        now=lambda: T0 + timedelta(minutes=1),
        **kwargs,
    )


def test_it_is_an_incident_channel_named_securityhub(securityhub: Any) -> None:
    hub: IncidentChannel = channel(securityhub)
    assert hub.name == "securityhub"


def test_one_finding_per_call_to_the_default_product(securityhub: Any, stubber: Stubber) -> None:
    # GIVEN Security Hub expects one finding of the default product
    stubber.add_response(
        "batch_import_findings",
        IMPORTED,
        {"Findings": [{**_any_finding(), "Id": FINDING_ID, "ProductArn": PRODUCT, "AwsAccountId": ACCOUNT}]},
    )
    # WHEN an incident opens  THEN the finding id comes back
    assert channel(securityhub).publish_incident(INCIDENT, OPENED) == FINDING_ID


@pytest.mark.parametrize(
    "code", ["ThrottlingException", "LimitExceeded", "InternalFailure", "TooManyRequestsException"]
)
def test_a_throttled_or_internal_failed_finding_is_retried(
    securityhub: Any, stubber: Stubber, code: str
) -> None:
    # GIVEN a 200 answer whose one finding failed with a transient code, then success
    stubber.add_response("batch_import_findings", failed(code))
    stubber.add_response("batch_import_findings", IMPORTED)
    # WHEN published  THEN the second attempt lands it, and the retry is logged
    with capture_logs() as logs:
        assert channel(securityhub).publish_incident(INCIDENT, OPENED) == FINDING_ID
    retries = [entry for entry in logs if entry["event"] == "securityhub.retry"]
    assert [r["error_code"] for r in retries] == [code]
    published = [entry for entry in logs if entry["event"] == "securityhub.published"]
    assert published[0]["attempts"] == 2


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("LimitExceededException", 429),
        ("ThrottlingException", 400),
        ("InternalException", 500),
        ("Whatever", 503),
    ],
)
def test_throttling_and_5xx_are_retried(securityhub: Any, stubber: Stubber, code: str, status: int) -> None:
    # GIVEN one whole-call transient error before success
    stubber.add_client_error("batch_import_findings", service_error_code=code, http_status_code=status)
    stubber.add_response("batch_import_findings", IMPORTED)
    # WHEN published  THEN it succeeds on the retry
    assert channel(securityhub).publish_incident(INCIDENT, OPENED) == FINDING_ID


def test_throttled_past_the_budget_is_retryable(securityhub: Any, stubber: Stubber) -> None:
    # GIVEN throttling on each of the three attempts, per finding then per call
    stubber.add_response("batch_import_findings", failed("ThrottlingException"))
    stubber.add_client_error(
        "batch_import_findings", service_error_code="LimitExceededException", http_status_code=429
    )
    stubber.add_response("batch_import_findings", failed("ThrottlingException"))
    # WHEN published  THEN the caller is told to try again later
    with pytest.raises(RetryableError) as raised:
        channel(securityhub, max_attempts=3).publish_incident(INCIDENT, OPENED)
    assert raised.value.reason == "notify_failed"
    assert "3 attempt" in raised.value.message
    assert "ThrottlingException" in raised.value.message


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (failed("InvalidAccess", "Account is not subscribed to AWS Security Hub"), "securityhub_not_enabled"),
        (failed("AccessDenied"), "securityhub_not_authorized"),
        (failed("InvalidInput", "Finding Types has an invalid value"), "securityhub_invalid_finding"),
        (failed("SomethingElse"), "securityhub_rejected"),
        ({"FailedCount": 1, "SuccessCount": 0, "FailedFindings": []}, "securityhub_rejected"),
    ],
)
def test_permanent_failed_findings_are_configuration_errors(
    securityhub: Any, stubber: Stubber, answer: dict[str, Any], reason: str
) -> None:
    # GIVEN a single answer queued (a retry would hit an unstubbed call)
    stubber.add_response("batch_import_findings", answer)
    # WHEN published  THEN it fails at once, typed, with a reason and a hint
    with pytest.raises(FindingRejected) as raised:
        channel(securityhub).publish_incident(INCIDENT, OPENED)
    assert isinstance(raised.value, ConfigurationError)
    assert raised.value.reason == reason


@pytest.mark.parametrize(
    ("code", "status", "reason", "hint"),
    [
        ("InvalidAccessException", 401, "securityhub_not_enabled", "enable-security-hub"),
        ("AccessDeniedException", 403, "securityhub_not_authorized", "securityhub:BatchImportFindings"),
        ("InvalidInputException", 400, "securityhub_invalid_finding", "fields"),
        ("ResourceNotFoundException", 404, "securityhub_not_found", "SECOPS_SECURITYHUB_PRODUCT_ARN"),
    ],
)
def test_permanent_call_errors_are_configuration_errors(
    securityhub: Any, stubber: Stubber, code: str, status: int, reason: str, hint: str
) -> None:
    # GIVEN Security Hub refuses the whole call
    stubber.add_client_error(
        "batch_import_findings", service_error_code=code, service_message="no\nway", http_status_code=status
    )
    # WHEN published  THEN not retried, and the operator reads what to do
    with pytest.raises(FindingRejected) as raised:
        channel(securityhub).publish_incident(INCIDENT, OPENED)
    assert raised.value.reason == reason
    assert raised.value.code == code
    assert hint in raised.value.message
    assert "\n" not in raised.value.message


def test_resolving_imports_the_totals_then_sets_the_workflow(securityhub: Any, stubber: Stubber) -> None:
    # GIVEN an incident an operator resolved with a note
    resolved = replace(
        INCIDENT,
        status="resolved",
        status_history=(
            StatusChange("resolved", "2026-11-25T11:00:00+00:00", "alice", "scanner blocked upstream"),
        ),
    )
    # AND Security Hub expects the import, then the customer-side workflow change
    stubber.add_response("batch_import_findings", IMPORTED, {"Findings": ANY})
    stubber.add_client_error(
        "batch_update_findings", service_error_code="ThrottlingException", http_status_code=429
    )
    stubber.add_response(
        "batch_update_findings",
        {"ProcessedFindings": [{"Id": FINDING_ID, "ProductArn": PRODUCT}], "UnprocessedFindings": []},
        {
            "FindingIdentifiers": [{"Id": FINDING_ID, "ProductArn": PRODUCT}],
            "Workflow": {"Status": "RESOLVED"},
            "Note": {
                "Text": "Resolved in secops-worker by alice: scanner blocked upstream. "
                "Final: 1 event(s), last seen 2026-11-25T10:00:00.000Z.",
                "UpdatedBy": "secops-worker/alice",
            },
        },
    )
    # WHEN the resolved milestone is published  THEN both calls were made (one retried)
    assert channel(securityhub).publish_incident(resolved, RESOLVED) == FINDING_ID


def test_an_unprocessed_resolution_is_classified(securityhub: Any, stubber: Stubber) -> None:
    # GIVEN the workflow change is refused for the finding
    stubber.add_response("batch_import_findings", IMPORTED)
    stubber.add_response(
        "batch_update_findings",
        {
            "ProcessedFindings": [],
            "UnprocessedFindings": [
                {
                    "FindingIdentifier": {"Id": FINDING_ID, "ProductArn": PRODUCT},
                    "ErrorCode": "AccessDenied",
                    "ErrorMessage": "not allowed",
                }
            ],
        },
    )
    # WHEN resolved  THEN the operator learns which permission is missing
    with pytest.raises(FindingRejected) as raised:
        channel(securityhub).publish_incident(INCIDENT, RESOLVED)
    assert raised.value.reason == "securityhub_not_authorized"
    assert "BatchUpdateFindings" in raised.value.message


def test_the_account_is_asked_once(securityhub: Any, stubber: Stubber) -> None:
    # GIVEN STS answers once (a second call would hit an unstubbed response)
    sts = boto3.client("sts", region_name="eu-west-1")
    with Stubber(sts) as sts_stub:
        sts_stub.add_response(
            "get_caller_identity",
            {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:role/w", "UserId": "x"},
        )
        hub = SecurityHubChannel(client=securityhub, sts_client=sts, wait=wait_none())
        stubber.add_response("batch_import_findings", IMPORTED)
        stubber.add_response("batch_import_findings", IMPORTED)
        # WHEN two milestones are published
        hub.publish_incident(INCIDENT, OPENED)
        hub.publish_incident(INCIDENT, OPENED)
        # THEN the account and the default product were found once
        sts_stub.assert_no_pending_responses()
    assert hub.context().product_arn == PRODUCT


def test_from_settings_takes_the_product_region_and_budget() -> None:
    # GIVEN settings naming another region and a product ARN
    settings = Settings(
        securityhub_region="eu-central-1",
        securityhub_product_arn="arn:aws:securityhub:eu-central-1:111122223333:product/111122223333/default",
        notify_max_attempts=7,
    )
    # WHEN the channel is built from them (no request is made)
    hub = SecurityHubChannel.from_settings(settings)
    # THEN its client is in that region and the override wins over the default product
    assert hub._client.meta.region_name == "eu-central-1"
    assert hub._product_arn == settings.securityhub_product_arn
    assert hub._max_attempts == 7


def _any_finding() -> dict[str, Any]:
    """Every field of the rendered finding matched by ANY, so a test pins only a few."""
    keys = (
        "SchemaVersion", "ProductName", "GeneratorId", "Types", "CreatedAt", "UpdatedAt",
        "FirstObservedAt", "LastObservedAt", "Severity", "FindingProviderFields", "Title",
        "Description", "Resources", "ProductFields", "RecordState", "Action", "Workflow",
    )  # fmt: skip
    return dict.fromkeys(keys, ANY)
