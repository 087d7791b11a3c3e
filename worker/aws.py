"""AWS clients from the standard chain, with explicit timeouts and retry budgets.

Endpoints are not configured here on purpose: botocore reads ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>`` itself, so moto, LocalStack and AWS need no code change.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


def aws_session(region: str | None = None) -> boto3.Session:
    session = boto3.Session(region_name=region) if region else boto3.Session()
    if session.region_name is None:
        # No region anywhere (a fresh laptop): the embedded default and tests still work.
        session = boto3.Session(region_name="us-east-1")
    return session


def client(
    service: str,
    *,
    session: boto3.Session | None = None,
    region: str | None = None,
    connect_timeout: float = 3.0,
    read_timeout: float = 30.0,
    max_attempts: int = 3,
    max_pool_connections: int = 50,
) -> Any:
    """A boto3 client with bounded timeouts; ``max_pool_connections`` fits the concurrency."""
    session = session or aws_session(region)
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # total_max_attempts counts the first call; botocore's max_attempts would not.
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
    )
    return session.client(service, config=config)
