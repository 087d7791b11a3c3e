"""The transport interface to the agent runtime, and the ONE place its errors are classified.

A transport moves a request dict to the runtime and hands back the runtime's JSON body
(success or contract error, untouched). Everything that can go wrong on the way is
turned into the worker's typed errors here, so the consumer's control flow does not
depend on which transport (in-process, HTTP, AgentCore) is configured:

- :class:`~worker.errors.RuntimeUnavailable` - the runtime did not answer, or AgentCore
  or the model throttled us: nothing is wrong with the event, and every event would
  fail the same way right now. The consumer opens its circuit instead of burning
  receive counts into the DLQ.
- :class:`~worker.errors.RetryableError` - this call failed in a way a later retry may
  fix (a runtime 5xx, a contract error with a code in ``RETRYABLE_CODES``).
- :class:`~worker.errors.PermanentError` - the runtime rejected *this input*
  (``reason`` is the contract's error code); retrying the same event cannot help.
- :class:`TransportConfigError` - the worker is misconfigured (wrong ARN, missing IAM
  permission, wrong URL). Deliberately NOT a PermanentError: the event is fine, and a
  wrong ARN must not mark every event rejected and push it into the DLQ. Deliberately
  NOT retryable either: retrying a wrong ARN within one call only wastes the lease.
  The consumer should stop pulling, leave the message for SQS, and alert (it is the
  same flow as an open circuit, but it will not close by itself).

Retries of one call (exponential backoff with full jitter, bounded by attempts and a
deadline) live in :class:`RetryPolicy`; the facades run every call through it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

import structlog
from tenacity import RetryCallState, stop_before_delay, wait_random_exponential
from tenacity.wait import wait_base

from secops_core.errors import RETRYABLE_CODES, ErrorCode
from worker.errors import ConfigurationError, PermanentError, RetryableError, RuntimeUnavailable, WorkerError
from worker.retry import retrying

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

    from worker.settings import Settings

log = structlog.get_logger("worker.agents")

T = TypeVar("T")

# The header AgentCore routes sessions by; the HTTP transport sends it too, so a local
# runtime sees exactly what it would see behind AgentCore.
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
# AgentCore rejects a runtimeSessionId shorter than this (service model: SessionType).
MIN_SESSION_ID_CHARS = 33
SESSION_ID_PREFIX = "secops-"


class TransportConfigError(ConfigurationError):
    """The worker cannot reach the runtime as configured (ARN, permissions, URL).

    Neither retryable nor permanent: the event is fine and must not be rejected or sent
    to the DLQ; the deployment needs fixing. ``reason`` is the AWS error code or
    ``runtime_http_<status>``.
    """

    def __init__(self, message: str, *, reason: str = "transport_config") -> None:
        super().__init__(message, reason=reason)


@runtime_checkable
class Transport(Protocol):
    """Carries one request to the agent runtime and returns its JSON body."""

    def invoke(self, payload: dict[str, Any], *, session_id: str | None = None) -> dict[str, Any]:
        """Send ``payload``; return the runtime's body (a contract success or error).

        Raises a :mod:`worker.errors` error (or :class:`TransportConfigError`) when no
        contract body could be obtained.
        """
        ...

    def close(self) -> None:
        """Release connections; the transport is not used afterwards."""
        ...


def session_id_for(key: str) -> str:
    """A runtime session id derived from ``key`` (an event key), 71 characters.

    Deterministic so that every retry and redelivery of one event lands in the same
    AgentCore session, and long enough for AgentCore's 33-character minimum.
    """
    return SESSION_ID_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_session_id() -> str:
    """A fresh session id for a call that belongs to no event."""
    return SESSION_ID_PREFIX + uuid.uuid4().hex + uuid.uuid4().hex[:8]


# ---- classification ------------------------------------------------------------------

# AgentCore (InvokeAgentRuntime) error codes, checked against the botocore service model
# of bedrock-agentcore 2024-02-28, plus the generic AWS auth codes any call can return.
_UNAVAILABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ThrottledException",
        # Concurrent-session quota: frees up as other sessions end.
        "ServiceQuotaExceededException",
        "InternalServerException",
        "ServiceUnavailableException",
        "ServiceException",
        # A task role's credentials rotate; the next call signs with fresh ones.
        "ExpiredTokenException",
        "RequestExpired",
    }
)
# The session is busy with another invocation (a concurrent retry of the same event).
_RETRYABLE_CODES = frozenset({"RetryableConflictException", "ConflictException"})
_CONFIG_CODES = frozenset(
    {
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnauthorizedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "IncompleteSignature",
        "SubscriptionRequiredException",
    }
)
# AgentCore answers any non-2xx of the container as RuntimeClientError (HTTP 424) with
# this message and drops the container's body, so the contract code is lost and only
# the container's status survives.
_WRAPPED_STATUS = re.compile(r"Received error \((\d{3})\) from runtime")
# RuntimeClientError texts that mean the container is not (yet) serving: a cold start
# that took too long, or a failed health check. Waiting is the only remedy.
_NOT_SERVING = re.compile(r"initiali[sz]ation|health ?check|timed out|timeout", re.IGNORECASE)
# Statuses our runtime uses only for bad input (secops_core.errors.HTTP_STATUS).
_INPUT_STATUSES = frozenset({400, 413, 422})


def classify_exception(exc: BaseException) -> WorkerError:
    """Map any failure of a transport call to the worker's typed errors."""
    if isinstance(exc, WorkerError):
        return exc
    # Imported here so that importing the interface does not import either client library.
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        return classify_client_error(exc)
    if isinstance(exc, BotoCoreError):
        return classify_botocore_error(exc)
    import httpx

    if isinstance(exc, httpx.HTTPError):
        return classify_httpx_error(exc)
    if isinstance(exc, OSError):
        # Sockets opened outside the two clients (ConnectionRefusedError, TimeoutError ...).
        return RuntimeUnavailable(f"agent runtime unreachable: {exc}", reason="connection")
    return RetryableError(f"agent runtime call failed: {type(exc).__name__}: {exc}", reason="unexpected")


def classify_client_error(exc: ClientError) -> WorkerError:
    """Classify a botocore ``ClientError`` from ``InvokeAgentRuntime``."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    text = f"AgentCore {code}: {message}"
    if code == "RuntimeClientError":
        return _classify_runtime_client_error(message, text)
    if code in _UNAVAILABLE_CODES:
        return RuntimeUnavailable(text, reason=code)
    if code in _RETRYABLE_CODES:
        return RetryableError(text, reason=code)
    if code in _CONFIG_CODES:
        return TransportConfigError(text, reason=code)
    # An error code this build does not know: fall back on the HTTP status.
    if status == 429 or status >= 500:
        return RuntimeUnavailable(text, reason=code)
    return TransportConfigError(text, reason=code)


def _classify_runtime_client_error(message: str, text: str) -> WorkerError:
    wrapped = _WRAPPED_STATUS.search(message)
    if wrapped:
        status = int(wrapped.group(1))
        if status in _INPUT_STATUSES:
            # Our container answers these only for bad input; AgentCore dropped the code.
            return PermanentError(text, reason=f"runtime_http_{status}")
        return classify_http_status(status, text)
    if _NOT_SERVING.search(message):
        return RuntimeUnavailable(text, reason="RuntimeClientError")
    return TransportConfigError(text, reason="RuntimeClientError")


def classify_botocore_error(exc: Exception) -> WorkerError:
    """Classify a botocore error raised before or instead of a service answer."""
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )
    from botocore.exceptions import (
        HTTPClientError,
        IncompleteReadError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
        PartialCredentialsError,
    )

    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        # Endpoint unreachable, connect/read timeout, connection closed mid-response.
        return RuntimeUnavailable(f"AgentCore unreachable: {exc}", reason="connection")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError | ParamValidationError):
        return TransportConfigError(f"AgentCore client misconfigured: {exc}", reason="client_config")
    return TransportConfigError(f"AgentCore client error: {exc}", reason=type(exc).__name__)


def classify_httpx_error(exc: Exception) -> WorkerError:
    """Classify an httpx error (no HTTP response was obtained)."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        kind = "connect_timeout" if isinstance(exc, httpx.ConnectTimeout) else "read_timeout"
        return RuntimeUnavailable(f"agent runtime timed out: {exc!r}", reason=kind)
    if isinstance(exc, httpx.TransportError):
        # Connection refused, reset, DNS, protocol errors: the runtime is not answering.
        # httpx.InvalidURL and UnsupportedProtocol are configuration, not connectivity.
        if isinstance(exc, httpx.UnsupportedProtocol):
            return TransportConfigError(f"runtime URL unusable: {exc}", reason="invalid_url")
        return RuntimeUnavailable(f"agent runtime unreachable: {exc!r}", reason="connection")
    return TransportConfigError(f"runtime request failed: {exc}", reason="invalid_url")


def classify_http_status(status: int, detail: str = "") -> WorkerError:
    """Classify a non-2xx answer that carries no contract error body.

    Our runtime always answers in the contract's shape, so a bare status came from
    something in front of it (a proxy, a load balancer, the wrong server).
    """
    text = detail or f"agent runtime answered HTTP {status}"
    reason = f"runtime_http_{status}"
    if status in {408, 429, 502, 503, 504}:
        return RuntimeUnavailable(text, reason=reason)
    if status >= 500:
        return RetryableError(text, reason=reason)
    if status == 413:
        # A proxy's body limit: this request is too large, and will stay too large.
        return PermanentError(text, reason="payload_too_large")
    return TransportConfigError(text, reason=reason)


def classify_error_body(body: Mapping[str, Any]) -> WorkerError:
    """Classify a contract error response ``{"status": "error", "error": {...}}``.

    A code in ``RETRYABLE_CODES`` is retryable; ``model_throttled`` is the model
    provider throttling every request, so it is :class:`RuntimeUnavailable` (still a
    RetryableError) and the circuit opens rather than every event burning receives.
    Any other known code means the input is bad: :class:`PermanentError`. A code newer
    than this build follows the body's own ``retryable`` flag.
    """
    error = body.get("error")
    error = error if isinstance(error, Mapping) else {}
    code = str(error.get("code") or "unknown")
    message = f"agent runtime error {code}: {error.get('message') or 'no message'}"
    if code == ErrorCode.MODEL_THROTTLED:
        return RuntimeUnavailable(message, reason=code)
    if code in RETRYABLE_CODES:
        return RetryableError(message, reason=code)
    if code not in ErrorCode.__members__.values() and error.get("retryable") is True:
        return RetryableError(message, reason=code)
    return PermanentError(message, reason=code)


# Failures after which the runtime may have made model requests before the answer was
# lost: it read the request (a read timeout, a 5xx, a broken stream). A refused or timed
# out connection, or an answer that arrived, spent nothing unknown.
_MAY_HAVE_SPENT = frozenset({"read_timeout", "stream_error", "unexpected", "RuntimeClientError"})


def may_have_spent_model_calls(exc: BaseException) -> bool:
    """True when a failed analyze attempt may have cost model requests nobody counted."""
    reason = getattr(exc, "reason", None)
    if not isinstance(reason, str):
        return not isinstance(exc, WorkerError)
    return reason in _MAY_HAVE_SPENT or (reason.startswith("runtime_http_5") and reason != "runtime_http_503")


def is_error_body(body: Any) -> bool:
    """True for a body in the contract's error shape."""
    return (
        isinstance(body, Mapping)
        and body.get("status") == "error"
        and isinstance(body.get("error"), Mapping)
        and "code" in body["error"]
    )


# ---- bodies --------------------------------------------------------------------------


def response_body(status: int, content_type: str | None, raw: bytes) -> dict[str, Any]:
    """The runtime's contract body from one HTTP-level answer, or the classified error.

    A non-2xx answer that carries a contract error body is returned as that body: the
    code in it says more than the status.
    """
    try:
        body = decode_body(raw, content_type)
    except ValueError as exc:
        body = None
        problem = str(exc)
    else:
        problem = "runtime answered something other than a JSON object"
    if 200 <= status < 300:
        if isinstance(body, dict):
            return body
        raise TransportConfigError(
            f"{problem} (HTTP {status}); is the runtime URL or ARN right?",
            reason="invalid_response",
        )
    if is_error_body(body):
        return cast("dict[str, Any]", body)
    raise classify_http_status(status)


def decode_body(raw: bytes, content_type: str | None) -> Any:
    """Decode a JSON body, or the final JSON object of a server-sent event stream.

    Raises ValueError when the bytes are neither.
    """
    if "text/event-stream" in (content_type or "").lower():
        return _last_sse_object(raw)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"runtime answered a body that is not JSON ({exc})") from None


def _last_sse_object(raw: bytes) -> dict[str, Any]:
    """The response in a ``text/event-stream`` body: the last event with a ``status``.

    AgentCore streams a handler's yields as ``data: <json>`` events; ours yields one
    final object, but partial events may precede it. An event a streaming handler sent
    when it crashed (``{"error": ..., "error_type": ...}``) is a runtime failure.
    """
    objects = [obj for obj in _sse_payloads(raw) if isinstance(obj, dict)]
    for obj in reversed(objects):
        if "status" in obj:
            return obj
    if objects and "error_type" in objects[-1]:
        raise RetryableError(
            f"agent runtime stream failed: {objects[-1].get('error')}", reason="stream_error"
        )
    if objects:
        return objects[-1]
    raise ValueError("runtime answered an event stream with no JSON object in it")


def _sse_payloads(raw: bytes) -> Iterable[Any]:
    text = raw.decode("utf-8", errors="replace")
    # SSE: events are separated by a blank line; an event's data lines join with "\n".
    for block in re.split(r"\r?\n\r?\n", text):
        data = [line[5:].removeprefix(" ") for line in block.splitlines() if line.startswith("data:")]
        if not data:
            continue
        try:
            value = json.loads("\n".join(data))
            # A handler that yields pre-serialized JSON arrives as a JSON string.
            if isinstance(value, str) and value.lstrip().startswith("{"):
                value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            continue
        yield value


# ---- retries -------------------------------------------------------------------------


def _default_wait() -> wait_base:
    # Full jitter (AWS architecture blog): uniform in [0, min(max, 0.5 * 2^n)] seconds.
    return wait_random_exponential(multiplier=0.5, max=10)


@dataclass(frozen=True)
class RetryPolicy:
    """How one runtime call is retried: full-jitter backoff, bounded twice.

    Stops after ``max_attempts`` or before a sleep would cross ``deadline_s`` (so the
    whole call stays inside the message lease), whichever comes first. Only
    :class:`~worker.errors.RetryableError` (including RuntimeUnavailable) is retried;
    the last error is re-raised as is.
    """

    max_attempts: int = 4
    deadline_s: float = 90.0
    wait: wait_base = field(default_factory=_default_wait)
    # Injected by tests that want to observe sleeps rather than spend them.
    sleep: Callable[[float], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, wait: wait_base | None = None) -> RetryPolicy:
        """The policy configured by ``SECOPS_RUNTIME_MAX_ATTEMPTS`` / ``_RETRY_DEADLINE_S``."""
        return cls(
            max_attempts=settings.runtime_max_attempts,
            deadline_s=settings.runtime_retry_deadline_s,
            wait=wait or _default_wait(),
        )

    def call(self, fn: Callable[[], T], *, operation: str, event_key: str | None = None) -> T:
        """Run ``fn`` until it succeeds, fails permanently, or the budget is spent."""
        logger = log.bind(operation=operation)
        if event_key is not None:
            logger = logger.bind(event_key=event_key)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning(
                "runtime_retry",
                attempt=state.attempt_number,
                max_attempts=self.max_attempts,
                wait_s=round(state.next_action.sleep, 3) if state.next_action else None,
                error_type=type(exc).__name__,
                reason=getattr(exc, "reason", None),
                error=str(exc),
            )

        loop = retrying(
            max_attempts=self.max_attempts,
            stop=stop_before_delay(self.deadline_s),
            wait=self.wait,
            retry_on=lambda exc: isinstance(exc, RetryableError),
            before_sleep=before_sleep,
            sleep=self.sleep or time.sleep,
        )
        return loop(fn)
