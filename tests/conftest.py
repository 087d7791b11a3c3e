"""Shared fixtures: AWS services are moto's server over real HTTP, never mocks."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.moto_server import moto_server

# No test may reach a real AWS account, whatever the developer's shell holds.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_REGION"] = "us-east-1"
os.environ.pop("AWS_ENDPOINT_URL", None)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the session; tests isolate by unique resource names."""
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def dynamodb(moto_endpoint: str) -> Iterator[Any]:
    """One DynamoDB client on moto's server for a module of store tests (building one
    loads botocore's models, about 0.2 s); each test makes its own table."""
    import worker.platform.aws

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        yield worker.platform.aws.client("dynamodb")


@pytest.fixture
def aws_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every boto3 client of this test at moto's server through AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def unique() -> str:
    """A short unique suffix for resource names, so tests never share a queue or table."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """CLI tests configure logging like a process would; give the next test it back."""
    import logging

    import structlog

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    loggers = {
        name: (lg.level, lg.propagate, list(lg.handlers))
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)
    for name, (lvl, propagate, hs) in loggers.items():
        logger = logging.getLogger(name)
        logger.setLevel(lvl)
        logger.propagate = propagate
        logger.handlers[:] = hs


@pytest.fixture(scope="module", params=["zlib-ng", "stdlib"])
def both_inflaters(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test of a module that uses this runs with each library that inflates gzip:
    zlib-ng (what the lock installs) and the stdlib's zlib (the fallback)."""
    import zlib

    from secops_core.ingest import log_stream

    with pytest.MonkeyPatch.context() as patch:
        if request.param == "stdlib":
            patch.setattr(log_stream, "_INFLATE", zlib)
        yield str(request.param)
