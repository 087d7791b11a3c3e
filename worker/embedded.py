"""The embedded AWS endpoint: moto's server in-process on a free loopback port.

Used by ``secops demo``, the benchmark, the fault-injection run and the tests. The
worker reaches it over real HTTP through ``AWS_ENDPOINT_URL``, like any AWS endpoint.

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
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
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
def embedded_aws() -> Iterator[str]:
    """Start the server on 127.0.0.1 and yield its endpoint URL; stop it afterwards."""
    # One line per request at INFO would drown the worker's own logs.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = EmbeddedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
