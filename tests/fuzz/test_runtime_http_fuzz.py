"""The runtime's HTTP endpoint under random and malformed bodies, and under slow clients.

The real app (``python -m agent_runtime`` with the rules provider) is served once for the
module by uvicorn on a free port. Hypothesis sends a few hundred bodies: valid and broken
payloads, random bytes, truncated JSON, absurd numbers, nesting up to and past the
parser's limit, bodies over 1 MiB, wrong content types, chunked uploads. Every answer
must come within the client's timeout, never be a 500, and be JSON in the contract's
shape with the status its error code maps to.

Raw-socket cases then misbehave at the HTTP layer (a body shorter than its
Content-Length, a header that never ends, garbage instead of HTTP): none of them may
make the server stop answering other clients, so ``/ping`` must answer within 2 s after
(and during) each.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import closing, suppress

import httpx
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from secops_core.contract import ErrorResponse
from secops_core.errors import HTTP_STATUS
from tests.fixtures.runtime_server import rules_app, runtime_server
from tests.fuzz import strategies as s
from tests.fuzz.properties import assert_response, production_recursion_limit

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT_S = 5.0
PING_TIMEOUT_S = 2.0

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    None,
]


@pytest.fixture(scope="module")
def runtime_url() -> Iterator[str]:
    with runtime_server(rules_app()) as url:
        yield url


@pytest.fixture(scope="module")
def http(runtime_url: str) -> Iterator[httpx.Client]:
    # One client (building one loads a CA bundle), but a fresh connection per request:
    # the server closes the connection after an oversize body it did not read.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=runtime_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        yield client


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def assert_ping(url: str) -> None:
    """Another client is served promptly: the server is not stuck."""
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=PING_TIMEOUT_S) as client:
        response = client.get("/ping")
    assert response.status_code == 200
    assert response.json()["status"] in {"Healthy", "HealthyBusy"}
    assert time.monotonic() - started < PING_TIMEOUT_S


def _chunks(body: bytes, size: int) -> Iterator[bytes]:
    # Bounded count: a 1 MiB body is never sent one byte per chunk.
    size = max(size, len(body) // 64, 1)
    for start in range(0, len(body), size):
        yield body[start : start + size]


@s.fuzz_settings(200)
@given(
    body=s.weighted((3, s.raw_bodies), (2, s.payloads.map(s.encode))),
    content_type=st.sampled_from(CONTENT_TYPES),
    chunk_size=st.none() | st.sampled_from([1, 7, 1024, 65536]),
)
@example(body=s.nested_body(970, "list"), content_type="application/json", chunk_size=None)
@example(body=b'{"action": "monitor", "hours": Infinity}', content_type="application/json", chunk_size=None)
@example(body=b"x" * (s.MAX_PAYLOAD_BYTES + 1), content_type="application/json", chunk_size=65536)
def test_every_body_gets_a_contract_answer_in_time_and_never_a_500(
    http: httpx.Client, body: bytes, content_type: str | None, chunk_size: int | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    # Chunked transfer encoding when chunk_size is set (httpx streams an iterator).
    content = body if chunk_size is None else _chunks(body, chunk_size)
    started = time.monotonic()
    # The server runs in this process: hypothesis's raised recursion limit would hide
    # the stack overflows a real server hits.
    with production_recursion_limit():
        response = http.post("/invocations", content=content, headers=headers)
    elapsed = time.monotonic() - started
    assert elapsed < REQUEST_TIMEOUT_S
    assert response.status_code != 500, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    answer = assert_response(response.json())
    if isinstance(answer, ErrorResponse):
        assert response.status_code == HTTP_STATUS[answer.error.code]
        event(f"{response.status_code} {answer.error.code}")
    else:
        assert response.status_code == 200
        event(f"200 {answer.workflow}")


# ---- raw sockets -----------------------------------------------------------------------------


def _connect(url: str) -> socket.socket:
    sock = socket.create_connection(_address(url), timeout=PING_TIMEOUT_S)
    sock.settimeout(PING_TIMEOUT_S)
    return sock


def _request(length: int | str, *, extra: str = "") -> bytes:
    return (
        "POST /invocations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def _read_status(sock: socket.socket) -> int | None:
    """The status code the server answered with, or None if it closed without one."""
    try:
        data = sock.recv(65536)
    except (TimeoutError, ConnectionResetError):
        return None
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data.split(b" ", 2)[1])


def test_a_body_shorter_than_its_content_length_then_a_close(runtime_url: str) -> None:
    with closing(_connect(runtime_url)) as sock:
        sock.sendall(_request(1000) + b'{"action": "anal')
    assert_ping(runtime_url)


def test_a_stalled_upload_does_not_stop_other_clients(runtime_url: str) -> None:
    with closing(_connect(runtime_url)) as sock:
        sock.sendall(_request(1_000_000) + b'{"action": "analyze", "event": {')
        # The upload is still open and going nowhere while others are served.
        assert_ping(runtime_url)
        assert_ping(runtime_url)
    assert_ping(runtime_url)


def test_many_slowloris_connections_do_not_stop_other_clients(runtime_url: str) -> None:
    sockets = [_connect(runtime_url) for _ in range(50)]
    try:
        for index, sock in enumerate(sockets):
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: localhost\r\nX-Slow-%d: " % index)
        assert_ping(runtime_url)
        # Headers trickle in a byte at a time and never end.
        for _ in range(3):
            for sock in sockets:
                sock.sendall(b"a")
            assert_ping(runtime_url)
    finally:
        for sock in sockets:
            sock.close()
    assert_ping(runtime_url)


def test_a_body_sent_a_byte_at_a_time_is_still_answered(runtime_url: str) -> None:
    body = b'{"action": "analyze", "event": {"id": "slow"}}'
    with closing(_connect(runtime_url)) as sock:
        sock.sendall(_request(len(body)))
        for byte in body:
            sock.sendall(bytes([byte]))
            time.sleep(0.002)
        assert _read_status(sock) == 422
    assert_ping(runtime_url)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
        b"GARBAGE\r\n\r\n",
        _request("abc"),
        _request(-1),
        _request(10, extra="Content-Length: 20\r\n"),
        _request(10, extra="Transfer-Encoding: chunked\r\n") + b"zz\r\n",
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        b"POST /invocations HTTP/9.9\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    ],
    ids=[
        "tls_hello",
        "garbage",
        "content_length_abc",
        "content_length_negative",
        "two_content_lengths",
        "bad_chunk_size",
        "200kb_header",
        "huge_chunk_size",
        "http_9_9",
    ],
)
def test_malformed_http_gets_an_error_or_a_close_and_the_server_keeps_serving(
    runtime_url: str, raw: bytes
) -> None:
    with closing(_connect(runtime_url)) as sock:
        with suppress(BrokenPipeError, ConnectionResetError):  # the server hung up already
            sock.sendall(raw)
        status = _read_status(sock)
    assert status is None or 400 <= status < 500, status
    assert_ping(runtime_url)


def test_pipelined_requests_are_all_answered(runtime_url: str) -> None:
    body = b'{"action": "monitor", "hours": 1}'
    with closing(_connect(runtime_url)) as sock:
        sock.sendall((_request(len(body)) + body) * 3)
        received = b""
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while received.count(b"HTTP/1.1 200") < 3 and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    assert received.count(b"HTTP/1.1 200") == 3
    assert_ping(runtime_url)
