"""The retry discipline every output channel shares: which AWS failures are worth
another attempt in this process, and how a call that failed for good is reported
(:func:`call`); the loop itself is the worker's one retry policy (:mod:`worker.retry`).

A channel's client makes a single attempt per call (see :func:`worker.platform.aws.client`), so
every retry happens here, is logged, and counts against the channel's attempt budget
(``SECOPS_NOTIFY_MAX_ATTEMPTS``) instead of multiplying with botocore's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ParamValidationError
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity.wait import wait_base

from worker.errors import ConfigurationError, RetryableError
from worker.retry import default_wait, retrying

T = TypeVar("T")

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


class Rejected(ConfigurationError):
    """A channel's call refused for a reason retrying cannot fix (each channel has its
    own subclass); ``code`` is the service's error code.
    """

    def __init__(self, message: str, *, reason: str, code: str) -> None:
        super().__init__(message, reason=reason)
        self.code = code


def error_message(exc: ClientError) -> str:
    """The message AWS gave with a failed call, as it came."""
    return str(exc.response.get("Error", {}).get("Message", ""))


@dataclass(frozen=True, slots=True)
class Failures:
    """How one channel reports its calls: the log events, the exception of a refusal,
    and the reasons and hints an operator acts on.
    """

    # Log events are ``<events>retry``, ``<events>rejected`` and ``<events>failed``.
    events: str
    rejected: type[Rejected]
    # The reason and hint of an error code that retrying cannot fix.
    permanent: Callable[[str], tuple[str, str]]
    # The reason of a request botocore refused to send, and the hint added to its message.
    invalid_reason: str
    # The reason of a failure worth another try later.
    failed_reason: str
    invalid_hint: str | None = None
    retry_on: Callable[[BaseException], bool] = is_transient
    # The service's message as quoted in a refusal.
    detail: Callable[[ClientError], str] = error_message


def call(
    fn: Callable[[], T],
    *,
    failures: Failures,
    max_attempts: int,
    wait: wait_base,
    logger: Any,
    not_sent: str,
    refused: str,
    failed: str,
) -> tuple[T, int]:
    """``fn()`` under the retry discipline; its result and the attempts it took.

    A request botocore refuses to send and a permanent AWS error raise the channel's
    ``failures.rejected`` at once; a transient error past the attempt budget, or a
    client-side one such as missing credentials, raises
    :class:`~worker.errors.RetryableError`. ``not_sent``, ``refused`` and ``failed``
    open the message of each (e.g. ``SNS publish to <topic>``).
    """
    loop = retrying(
        max_attempts=max_attempts,
        wait=wait,
        logger=logger,
        log_event=f"{failures.events}retry",
        retry_on=failures.retry_on,
    )
    try:
        result = loop(fn)
    except ParamValidationError as exc:
        logger.error(f"{failures.events}rejected", error_code="ParamValidationError")
        hint = f": {failures.invalid_hint}" if failures.invalid_hint is not None else ""
        raise failures.rejected(
            f"{not_sent} was not sent: invalid request: {exc}{hint}",
            reason=failures.invalid_reason,
            code="ParamValidationError",
        ) from exc
    except (ClientError, BotoCoreError) as exc:
        attempts = loop.statistics.get("attempt_number", 1)
        code = error_code(exc)
        if isinstance(exc, ClientError) and not failures.retry_on(exc):
            reason, hint = failures.permanent(code)
            logger.error(f"{failures.events}rejected", error_code=code, reason=reason)
            raise failures.rejected(
                f"{refused} ({code}: {failures.detail(exc)}): {hint}", reason=reason, code=code
            ) from exc
        # Transient failures past the budget, and client-side failures such as
        # missing credentials, are worth another try once the message comes back.
        logger.error(f"{failures.events}failed", error_code=code, attempts=attempts)
        raise RetryableError(
            f"{failed} failed after {attempts} attempt(s): {code}", reason=failures.failed_reason
        ) from exc
    return result, int(loop.statistics.get("attempt_number", 1))


__all__ = [
    "Failures",
    "Rejected",
    "call",
    "default_wait",
    "error_code",
    "error_message",
    "is_transient",
]
