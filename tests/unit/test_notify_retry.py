"""The retry discipline the output channels share (worker/notify/retry.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from worker.notify.retry import error_code, is_transient


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("Throttling", 400),
        ("InternalFailure", 500),
        ("InternalException", 500),  # EventBridge's own internal error
        ("Whatever", 503),  # any 5xx, whatever its code
    ],
)
def test_throttling_internal_errors_and_5xx_are_transient(code: str, status: int) -> None:
    # GIVEN a failed call with that code and status / WHEN classified / THEN it is retried
    assert is_transient(_client_error(code, status))


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException", "MalformedDetail"])
def test_refusals_are_not_transient(code: str) -> None:
    # GIVEN a 4xx refusal / WHEN classified / THEN retrying here cannot help
    assert not is_transient(_client_error(code, 400))


def test_connection_errors_are_transient_and_client_side_errors_are_not() -> None:
    # GIVEN a connection failure and a request botocore refused to send
    unreachable = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    invalid = ParamValidationError(report="bad")

    # WHEN classified / THEN only the first is retried, and each is named
    assert is_transient(unreachable)
    assert not is_transient(invalid)
    assert error_code(unreachable) == "EndpointConnectionError"
    assert error_code(_client_error("ThrottlingException", 400)) == "ThrottlingException"
