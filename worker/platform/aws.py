"""AWS clients from the standard chain, with explicit timeouts and retry budgets.

Endpoints are not configured here on purpose: botocore reads ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>`` itself, so moto, LocalStack and AWS need no code change.
The one exception is ``SECOPS_LOCALSTACK=1`` with neither variable set: then
localstack-client finds LocalStack's edge endpoint (``LOCALSTACK_HOST``, ``USE_SSL``),
the way LocalStack's own tooling does.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal, TypedDict, Unpack, cast, overload

import boto3
import botocore.session
import structlog
from botocore.client import BaseClient
from botocore.config import Config

from worker.errors import ConfigurationError

if TYPE_CHECKING:
    # The maintained stubs (types-boto3, a development dependency): every client is typed
    # for mypy while the runtime image needs nothing beyond boto3 (docs/architecture.md).
    from types_boto3_bedrock_agentcore.client import BedrockAgentCoreClient
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_events.client import EventBridgeClient
    from types_boto3_s3.client import S3Client
    from types_boto3_securityhub.client import SecurityHubClient
    from types_boto3_sns.client import SNSClient
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sts.client import STSClient
    from types_boto3_wafv2.client import WAFV2Client

log = structlog.get_logger("worker.aws")


def aws_session(region: str | None = None) -> boto3.Session:
    session = boto3.Session(region_name=region) if region else boto3.Session()
    if session.region_name is None:
        # No region anywhere (a fresh laptop): the embedded default and tests still work.
        session = boto3.Session(region_name="us-east-1")
    return session


class ClientOptions(TypedDict, total=False):
    session: boto3.Session | None
    region: str | None
    connect_timeout: float
    read_timeout: float
    max_attempts: int
    max_pool_connections: int
    localstack: bool


@overload
def client(service: Literal["sqs"], **options: Unpack[ClientOptions]) -> SQSClient: ...
@overload
def client(service: Literal["sns"], **options: Unpack[ClientOptions]) -> SNSClient: ...
@overload
def client(service: Literal["dynamodb"], **options: Unpack[ClientOptions]) -> DynamoDBClient: ...
@overload
def client(service: Literal["s3"], **options: Unpack[ClientOptions]) -> S3Client: ...
@overload
def client(service: Literal["sts"], **options: Unpack[ClientOptions]) -> STSClient: ...
@overload
def client(service: Literal["securityhub"], **options: Unpack[ClientOptions]) -> SecurityHubClient: ...
@overload
def client(service: Literal["events"], **options: Unpack[ClientOptions]) -> EventBridgeClient: ...
@overload
def client(service: Literal["wafv2"], **options: Unpack[ClientOptions]) -> WAFV2Client: ...
@overload
def client(
    service: Literal["bedrock-agentcore"], **options: Unpack[ClientOptions]
) -> BedrockAgentCoreClient: ...
def client(
    service: str,
    *,
    session: boto3.Session | None = None,
    region: str | None = None,
    connect_timeout: float = 3.0,
    read_timeout: float = 30.0,
    max_attempts: int = 3,
    max_pool_connections: int = 50,
    localstack: bool = False,
) -> BaseClient:
    """A boto3 client with bounded timeouts; ``max_pool_connections`` fits the concurrency.

    ``localstack`` points the client at LocalStack (see :func:`localstack_endpoint`).
    """
    session = session or aws_session(region)
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # total_max_attempts counts the first call; botocore's max_attempts would not.
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
    )
    endpoint_url = localstack_endpoint(service) if localstack else None
    misnamed = misnamed_endpoint_variable(service)
    if misnamed is not None and service not in _WARNED:
        _WARNED.add(service)
        log.warning(
            "endpoint_variable_not_read",
            variable=misnamed,
            reads=endpoint_variable(service),
            hint=f"botocore ignores {misnamed}: set {endpoint_variable(service)} (or AWS_ENDPOINT_URL)",
        )
    # The stubs overload Session.client per service literal; ``service`` is any name here.
    make = cast("Callable[..., BaseClient]", session.client)
    return make(service, config=config, endpoint_url=endpoint_url)


# The services whose misnamed endpoint variable was reported already (once per process).
_WARNED: set[str] = set()


def misnamed_endpoint_variable(service: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``AWS_ENDPOINT_URL_<CLIENT NAME>`` when it is set but botocore reads another
    variable for ``service`` (``AWS_ENDPOINT_URL_EVENTS`` for ``events``, whose service id
    is EventBridge) and neither that one nor ``AWS_ENDPOINT_URL`` is set: the client would
    go to AWS although an endpoint was meant."""
    env = os.environ if environ is None else environ
    guessed = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    read = endpoint_variable(service)
    if guessed == read or not env.get(guessed) or env.get(read) or env.get("AWS_ENDPOINT_URL"):
        return None
    return guessed


@functools.cache
def endpoint_variable(service: str) -> str:
    """The per-service endpoint variable botocore itself reads for the client ``service``:
    ``AWS_ENDPOINT_URL_`` and the service id of its model, hyphenized, in upper snake
    case. It is not the client name: ``events`` is ``AWS_ENDPOINT_URL_EVENTBRIDGE``.
    """
    service_id = botocore.session.get_session().get_service_model(service).service_id
    hyphenized: str = service_id.hyphenize()
    return "AWS_ENDPOINT_URL_" + hyphenized.replace("-", "_").upper()


def localstack_endpoint(service: str) -> str | None:
    """LocalStack's endpoint for ``service``, or None when the standard variables choose one.

    An explicit ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` always wins: it
    is what every other AWS tool on the machine follows too.
    """
    if os.environ.get("AWS_ENDPOINT_URL") or os.environ.get(endpoint_variable(service)):
        return None
    try:
        from localstack_client import config as localstack_config
    except ImportError:
        raise ConfigurationError(
            "SECOPS_LOCALSTACK=1 needs localstack-client: install the `localstack` extra "
            "(pip install 'secops-worker[localstack]') or set AWS_ENDPOINT_URL instead",
            reason="localstack_client_missing",
        ) from None
    endpoint: str | None = localstack_config.get_service_endpoint(service)
    return endpoint
