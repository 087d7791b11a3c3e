"""The runtime's guards against slow and odd clients, over a real socket."""

from __future__ import annotations

import json
import socket
import time

from agent_runtime.app import create_app
from agent_runtime.service import build_service
from agent_runtime.settings import RuntimeSettings
from tests.fixtures.runtime_server import runtime_server


def test_a_stalled_upload_is_answered_408_and_its_connection_freed() -> None:
    app = create_app(build_service(RuntimeSettings(provider="rules")), body_timeout_s=0.5)
    with runtime_server(app) as base:
        host, port = base.removeprefix("http://").split(":")
        # GIVEN a client that announces 1000 bytes and sends ten
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"action":'
            )
            started = time.monotonic()
            # WHEN it stalls THEN the server answers on its own, in the contract's shape
            raw = _read_response(sock)
        assert time.monotonic() - started < 4
        head, _, body = raw.partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 408")
        assert json.loads(body)["error"]["code"] == "request_timeout"


def _read_response(sock: socket.socket) -> str:
    """Headers and a Content-Length body, however the server splits them into segments."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()
