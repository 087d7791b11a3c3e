"""The embedded AWS endpoint: moto's server in-process on a free loopback port.

Used by ``secops demo``, the benchmark, the fault-injection run and the tests. The
worker reaches it over real HTTP through ``AWS_ENDPOINT_URL``, like any AWS endpoint.

The demo is sealed (:func:`sealed`): whatever the shell exported (per-service endpoint
variables such as ``AWS_ENDPOINT_URL_SQS``, which botocore prefers to
``AWS_ENDPOINT_URL``, a profile, a config file with a ``services`` section, session
tokens, ``SECOPS_*`` names and ARNs, LocalStack discovery), its clients reach the
embedded server only, with its own dummy credentials (docs/architecture.md, "Where it
runs").

One correction to moto: its DynamoDB backend evaluates a condition expression and
applies the write without a lock, so two concurrent conditional writes to one item can
both succeed (measured: 22 double claims in 60 two-thread races). Real DynamoDB makes
each conditional write atomic, and the whole idempotency design rests on that, so the
server serializes DynamoDB requests. Its WAFv2 backend compares an IP set's LockToken
and replaces the set in two steps the same way, so WAFv2 requests are serialized too
(real WAF rejects every write but one for a given token). SQS and SNS stay concurrent
(long polls must not block each other).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The JSON-protocol services whose conditional writes must be atomic, by X-Amz-Target prefix.
_SERIALIZED_TARGETS = ("DynamoDB_", "AWSWAF_")


class _SerializeDynamoDB:
    """WSGI middleware: one DynamoDB (or WAFv2) request at a time, as their atomic
    conditional writes imply."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.locks = {prefix: threading.Lock() for prefix in _SERIALIZED_TARGETS}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        lock = next((self.locks[p] for p in _SERIALIZED_TARGETS if target.startswith(p)), None)
        if lock is None:
            return self.app(environ, start_response)
        with lock:
            # Materialize the body inside the lock: the write happens while it is built.
            return list(self.app(environ, start_response))


class EmbeddedMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer with DynamoDB's conditional writes made atomic."""

    def _server_entry(self) -> None:
        app = _SerializeDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@contextmanager
def embedded_aws(port: int = 0) -> Iterator[str]:
    """Start the server on 127.0.0.1 (``port``, or a free one) and yield its endpoint
    URL; stop it afterwards."""
    # One line per request at INFO would drown the worker's own logs.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = port or free_port()
    server = EmbeddedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# The embedded backend's region and credentials: moto accepts anything, and nothing
# leaves the machine.
EMBEDDED_REGION = "us-east-1"
EMBEDDED_KEY = "demo"
# Variables of the surrounding environment the embedded backend's clients never see:
# every AWS_* (endpoints, profiles, credentials, config files, container and web-identity
# credentials), every SECOPS_* (names and ARNs of someone else's resources, LocalStack
# discovery) except the log level, and localstack-client's own.
_FOREIGN_PREFIXES = ("AWS_", "SECOPS_")
_FOREIGN_NAMES = frozenset({"LOCALSTACK_HOST", "LOCALSTACK_HOSTNAME", "EDGE_PORT", "USE_SSL"})
_KEPT = frozenset({"SECOPS_LOG_LEVEL", "SECOPS_LOG_FORMAT"})


def embedded_environment(endpoint: str) -> dict[str, str]:
    """What the embedded backend's clients are given: its endpoint for every service,
    its dummy credentials and region, and no configuration file to read more from."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": EMBEDDED_KEY,
        "AWS_SECRET_ACCESS_KEY": EMBEDDED_KEY,
        "AWS_REGION": EMBEDDED_REGION,
        "AWS_DEFAULT_REGION": EMBEDDED_REGION,
        # A profile's `services` section or credential_process cannot reach in either.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def foreign(name: str) -> bool:
    """Whether the surrounding environment's variable ``name`` is kept from the backend."""
    return (name.startswith(_FOREIGN_PREFIXES) or name in _FOREIGN_NAMES) and name not in _KEPT


def sealed_environment(endpoint: str, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without anything that could point a client elsewhere, plus
    :func:`embedded_environment`."""
    kept = {name: value for name, value in environ.items() if not foreign(name)}
    return {**kept, **embedded_environment(endpoint)}


@contextmanager
def sealed(endpoint: str) -> Iterator[tuple[str, ...]]:
    """Run the body with the process environment sealed to ``endpoint`` (every client
    made inside reaches it and nothing else); the environment is restored afterwards.
    Yields the names of the variables kept out (never their values).
    """
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(sealed_environment(endpoint, saved))
    try:
        yield tuple(sorted(name for name in saved if foreign(name)))
    finally:
        os.environ.clear()
        os.environ.update(saved)
