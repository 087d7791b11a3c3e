"""The retry discipline every output channel shares: which AWS failures are worth
another attempt in this process, and how attempts are spaced and logged.

A channel's client makes a single attempt per call (see :func:`worker.aws.client`), so
every retry happens here, is logged, and counts against the channel's attempt budget
(``SECOPS_NOTIFY_MAX_ATTEMPTS``) instead of multiplying with botocore's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential_jitter

# Codes worth retrying: throttling (including SNS's KMS throttling on encrypted topics)
# and the services' own internal errors. Any 5xx answer is retried too, whatever its code.
TRANSIENT_CODES = frozenset(
    {
        "Throttled",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "KMSThrottling",
        "KMSThrottlingException",
        "InternalError",
        "InternalFailure",
        "InternalException",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a failed call, or the exception's class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "Unknown")
    return type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call is worth retrying in this process."""
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(exc) in TRANSIENT_CODES or int(status) >= 500
    return False


def default_wait() -> wait_base:
    """0.5 s doubling to 8 s with jitter: five attempts take seconds, well inside a lease."""
    return wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)


def retrying(
    *,
    max_attempts: int,
    wait: wait_base,
    logger: Any,
    log_event: str,
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> Retrying:
    """A tenacity ``Retrying`` that retries ``retry_on`` failures up to ``max_attempts``
    in all, logs ``log_event`` before each sleep and re-raises the last failure.
    """
    return Retrying(
        stop=stop_after_attempt(max_attempts),
        wait=wait,
        retry=retry_if_exception(retry_on),
        before_sleep=_log_retry(logger, log_event),
        reraise=True,
    )


def _log_retry(logger: Any, log_event: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            log_event,
            attempt=state.attempt_number,
            error_code=error_code(exc) if exc else None,
            sleep_s=round(state.next_action.sleep, 3) if state.next_action else None,
        )

    return before_sleep
