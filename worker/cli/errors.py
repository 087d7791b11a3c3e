"""The one place that turns a failure an operator can fix into one line and an exit code.

Every command runs under :func:`explain`: AWS errors (TLS, credentials, endpoints,
permissions, missing resources, throttling), a missing optional extra, bad input and
bad settings each become ``secops: error: <what>: <hint>``. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSLError,
    TokenRetrievalError,
)

from worker.cli.common import EXIT_FAILED, EXIT_USAGE, CliError
from worker.errors import WorkerError
from worker.ops.inputs import InputError
from worker.platform.resources import ResourceError

# Optional extras by the top-level module they provide; `pip install` names the extra.
# The worker image leaves this package out (.dockerignore): it needs moto.
EMBEDDED_PACKAGE = "worker.embedded"
_EXTRAS = {
    "moto": "embedded",
    "werkzeug": "embedded",
    "flask": "embedded",
    "flask_cors": "embedded",
    "localstack_client": "localstack",
    "openai": "openai",
}

_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
    }
)
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "UnauthorizedOperation",
        "KMSAccessDenied",
    }
)
_MISSING_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NonExistentQueue",
        "ResourceNotFoundException",
        "ResourceNotFound",
        "NotFound",
        "NotFoundException",
    }
)
_THROTTLED_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "SlowDown",
    }
)

_CREDENTIALS_HINT = "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
_ENDPOINT_HINT = "check AWS_ENDPOINT_URL (or LOCALSTACK_HOST when SECOPS_LOCALSTACK=1)"


class Explained:
    """A failure as the line to print and the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        self.message = message
        self.code = code


def explain(exc: BaseException) -> Explained | None:
    """One line and an exit code for failures an operator can fix; None for bugs.

    An AWS error wrapped by the store or the notifier in their own error is explained
    by its cause, which names the fix better than the wrapper does.
    """
    if isinstance(exc, CliError):
        return Explained(str(exc), exc.code)
    if isinstance(exc, InputError | ResourceError):
        return Explained(str(exc))
    if isinstance(exc, ModuleNotFoundError):
        return _missing_extra(exc)
    for cause in _causes(exc):
        found = _aws_error(cause)
        if found is not None:
            return found
    if isinstance(exc, WorkerError):
        return Explained(exc.message)
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or during, as a traceback would show them."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _aws_error(exc: BaseException) -> Explained | None:
    if isinstance(exc, SSLError):
        return Explained(
            f"TLS failed with {_endpoint(exc)} ({_short(exc)}): the endpoint's certificate is not trusted; "
            "set AWS_CA_BUNDLE to its CA certificate, or use http:// (USE_SSL=0 for LocalStack)"
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return Explained(f"cannot reach {_endpoint(exc)}: {_ENDPOINT_HINT}")
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError):
        return Explained(f"{_endpoint(exc)} stopped answering: {_ENDPOINT_HINT}, or try again")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return Explained(f"no usable AWS credentials found ({_CREDENTIALS_HINT})", EXIT_USAGE)
    if isinstance(exc, TokenRetrievalError):
        return Explained(
            f"AWS credentials could not be refreshed ({_short(exc)}): "
            "run `aws sso login` or renew the session",
            EXIT_USAGE,
        )
    if isinstance(exc, NoRegionError):
        return Explained("no AWS region configured (set AWS_REGION)", EXIT_USAGE)
    if isinstance(exc, ClientError):
        return _client_error(exc)
    return None


def _client_error(exc: ClientError) -> Explained:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    operation = exc.operation_name
    detail = f"{code}: {_one_line(str(error.get('Message') or ''))}".rstrip(": ")
    if code in _CREDENTIAL_CODES:
        return Explained(
            f"AWS refused the credentials ({detail}): they are wrong or expired; "
            f"renew them ({_CREDENTIALS_HINT})",
            EXIT_USAGE,
        )
    if code in _DENIED_CODES:
        return Explained(f"access denied for {operation} ({detail}): grant the role that permission")
    if code in _MISSING_CODES:
        return Explained(f"{operation}: resource not found ({detail}): run `secops setup` or check SECOPS_*")
    if code in _THROTTLED_CODES:
        return Explained(f"AWS throttled {operation} ({detail}): try again in a moment")
    return Explained(f"AWS error {detail}")


def _missing_extra(exc: ModuleNotFoundError) -> Explained | None:
    if (exc.name or "").startswith(EMBEDDED_PACKAGE):
        return Explained(
            "the embedded demo is left out of the worker image: run `secops demo` from a source "
            "checkout (`make run`) or an install with the `embedded` extra",
            EXIT_USAGE,
        )
    top = (exc.name or "").split(".", 1)[0]
    extra = _EXTRAS.get(top)
    if extra is None:
        return None
    return Explained(
        f"this command needs the `{extra}` extra (module {top!r} is not installed): "
        f"pip install 'secops-worker[{extra}]'",
        EXIT_USAGE,
    )


def _endpoint(exc: BaseException) -> str:
    kwargs = getattr(exc, "kwargs", {}) or {}
    return str(kwargs.get("endpoint_url") or "the AWS endpoint")


def _short(exc: BaseException) -> str:
    """The innermost reason of a wrapped error (an SSL verification failure), on one line."""
    kwargs = getattr(exc, "kwargs", {}) or {}
    inner = kwargs.get("error")
    text = str(inner) if inner is not None else str(exc)
    return _one_line(text)[:200]


def _one_line(text: str) -> str:
    return " ".join(text.split())
