"""The HTTP transport against the real runtime app over real HTTP, and against stubs.

The runtime is the app ``python -m agent_runtime`` serves (rules provider) on a free
loopback port; failures the real app cannot be made to produce (a 503 from a proxy, a
server that never answers) come from a tiny ``http.server`` stub.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from structlog.testing import capture_logs
from tenacity import wait_none

from agent_runtime.service import build_service
from agent_runtime.settings import RuntimeSettings
from tests.fixtures.agent_samples import (
    MONITOR_NOW,
    native_waf_event,
    probe_series,
    simplified_event,
    simplified_waf_event,
)
from tests.fixtures.moto_server import free_port
from tests.fixtures.runtime_server import rules_app, runtime_server
from worker.agents import (
    SESSION_HEADER,
    Agents,
    RetryPolicy,
    SecurityAnalystAgent,
    TransportConfigError,
    build_transport,
    session_id_for,
)
from worker.agents.http import HttpTransport
from worker.errors import PermanentError, RetryableError, RuntimeUnavailable
from worker.settings import Settings

pytestmark = pytest.mark.slow


def fast_retry(attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, deadline_s=30, wait=wait_none())


@pytest.fixture(scope="module")
def runtime_url() -> Iterator[str]:
    with runtime_server(rules_app()) as url:
        yield url


@pytest.fixture
def transport(runtime_url: str) -> Iterator[HttpTransport]:
    http = HttpTransport(runtime_url, connect_timeout=2, read_timeout=10)
    yield http
    http.close()


@pytest.fixture
def agents(transport: HttpTransport) -> Agents:
    return Agents.over(transport, fast_retry())


# ---- the real runtime ----------------------------------------------------------------


def test_analyze_simplified_and_native_events(agents: Agents) -> None:
    # GIVEN both input shapes, normalized as the worker normalizes them
    simplified, native = simplified_waf_event(), native_waf_event()
    # WHEN the analyst analyzes each over HTTP
    first = agents.analyst.analyze(simplified)
    second = agents.analyst.analyze(native)
    # THEN each came back typed, for the same event, with a floor from its rule
    assert first.event == simplified
    assert first.analysis.severity_floor == 3
    assert second.event.rule_name == "SQLi_QUERYARGUMENTS"
    assert second.event.rule_group == "AWSManagedRulesSQLiRuleSet"
    assert second.analysis.severity_rating >= second.analysis.severity_floor
    assert second.triage.action in {"auto_close", "monitor", "escalate"}


def test_triage_only_never_lowers_the_floor(agents: Agents) -> None:
    event = simplified_waf_event(action="ALLOW")
    result = agents.triager.triage_only(event, {"severity_rating": 0})
    assert result.analysis.severity_rating == result.analysis.severity_floor >= 4
    assert result.triage.action == "escalate"


def test_monitor_groups_a_probe_series(agents: Agents) -> None:
    # GIVEN five probes from one address and two from another, in the window
    events = probe_series(5) + probe_series(2, source_ip="192.0.2.10")
    # WHEN the monitor runs with a threshold of 5
    result = agents.monitor.monitor(events, hours=24, threshold=5, now=MONITOR_NOW)
    # THEN one pattern meets the threshold and one does not
    assert result.events_in_window == 7
    counts = {p.source_ip: (p.count, p.threshold_met) for p in result.patterns}
    assert counts == {"198.51.100.23": (5, True), "192.0.2.10": (2, False)}


def test_health_reads_ping(transport: HttpTransport) -> None:
    assert transport.health() is True
    nobody = HttpTransport(f"http://127.0.0.1:{free_port()}", connect_timeout=0.5)
    assert nobody.health() is False
    nobody.close()


def test_bad_input_comes_back_as_the_body_and_classifies_permanent(
    transport: HttpTransport, agents: Agents
) -> None:
    # GIVEN an event the runtime rejects (422 with a contract body)
    bad = {"action": "analyze", "event": simplified_event(source_ip="999.1.1.1")}
    # WHEN it is sent through the transport
    body = transport.invoke(bad)
    # THEN the transport hands back the contract body rather than raising on the status
    assert body["status"] == "error"
    assert body["error"]["code"] == "invalid_event"
    # AND the facades raise PermanentError with the contract code, without retrying
    with capture_logs() as logs, pytest.raises(PermanentError) as caught:
        agents.triager.triage_only(simplified_waf_event(), {"severity_rating": 9})
    assert caught.value.reason == "invalid_analysis"
    with pytest.raises(PermanentError) as caught:
        agents.monitor.monitor([], hours=0, threshold=5)
    assert caught.value.reason == "invalid_hours"
    assert not [entry for entry in logs if entry["event"] == "runtime_retry"]


def test_connection_refused_is_runtime_unavailable_after_retries() -> None:
    # GIVEN a URL on a loopback port nobody listens on
    transport = HttpTransport(f"http://127.0.0.1:{free_port()}", connect_timeout=0.5)
    event = simplified_waf_event()
    # WHEN the analyst tries three times
    with capture_logs() as logs, pytest.raises(RuntimeUnavailable) as caught:
        SecurityAnalystAgent(transport, fast_retry(3)).analyze(event)
    transport.close()
    # THEN it retried twice (logged with the event key) and gave up as unavailable
    retries = [entry for entry in logs if entry["event"] == "runtime_retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert {r["event_key"] for r in retries} == {event.event_key}
    assert caught.value.reason == "connection"


def test_build_transport_http_from_settings(runtime_url: str) -> None:
    settings = Settings(transport="http", runtime_url=runtime_url + "/")
    agents = Agents.from_settings(settings, wait=wait_none())
    try:
        assert isinstance(agents.transport, HttpTransport)
        assert agents.analyst.analyze(simplified_waf_event()).workflow == "analyze"
    finally:
        agents.close()
    assert isinstance(build_transport(settings), HttpTransport)


# ---- a scripted stub for what the real app does not do -------------------------------


class Stub:
    """A loopback HTTP server answering POSTs from a script of (status, body, delay)."""

    def __init__(self, script: list[tuple[int, bytes, float]]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                stub.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
                )
                status, body, delay = stub.script.pop(0)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    kind = "application/json" if body[:1] == b"{" else "text/html"
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (the read-timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Stub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


UNAVAILABLE_PAGE = b"<html><body>503 Service Temporarily Unavailable</body></html>"


def analyze_body(event: Any) -> bytes:
    service = build_service(RuntimeSettings(provider="rules"))
    return json.dumps(service.invoke({"action": "analyze", "event": event.model_dump(mode="json")})).encode()


def test_503_twice_then_ok_is_retried_in_one_session() -> None:
    # GIVEN a proxy answering 503 twice before the runtime answers
    event = simplified_waf_event()
    script = [(503, UNAVAILABLE_PAGE, 0), (503, UNAVAILABLE_PAGE, 0), (200, analyze_body(event), 0)]
    with Stub(script) as stub:
        transport = HttpTransport(stub.url)
        # WHEN the analyst analyzes the event
        with capture_logs() as logs:
            result = SecurityAnalystAgent(transport, fast_retry()).analyze(event)
        transport.close()
    # THEN the third attempt succeeded, every attempt in the event's session
    assert result.event_key == event.event_key
    assert len(stub.requests) == 3
    assert {r["path"] for r in stub.requests} == {"/invocations"}
    assert {r["headers"][SESSION_HEADER] for r in stub.requests} == {session_id_for(event.event_key)}
    assert json.loads(stub.requests[0]["body"])["event"]["event_key"] == event.event_key
    assert [r["reason"] for r in logs if r["event"] == "runtime_retry"] == [
        "runtime_http_503",
        "runtime_http_503",
    ]


def test_retryable_contract_error_with_5xx_status_is_retried() -> None:
    # GIVEN the runtime reporting a model error (502 with a contract body), then success
    event = simplified_waf_event()
    error = json.dumps(
        {"status": "error", "error": {"code": "model_error", "message": "x", "retryable": True}}
    ).encode()
    with Stub([(502, error, 0), (200, analyze_body(event), 0)]) as stub:
        transport = HttpTransport(stub.url)
        result = SecurityAnalystAgent(transport, fast_retry()).analyze(event)
        transport.close()
    assert result.event_key == event.event_key
    assert len(stub.requests) == 2


def test_wrong_path_is_a_configuration_error_and_not_retried() -> None:
    with Stub([(404, b"<html>Not Found</html>", 0)]) as stub:
        transport = HttpTransport(stub.url)
        with pytest.raises(TransportConfigError) as caught:
            SecurityAnalystAgent(transport, fast_retry()).analyze(simplified_waf_event())
        transport.close()
    assert caught.value.reason == "runtime_http_404"
    assert len(stub.requests) == 1


def test_read_timeout_is_runtime_unavailable() -> None:
    with Stub([(200, b"{}", 1.0)]) as stub:
        transport = HttpTransport(stub.url, connect_timeout=1, read_timeout=0.2)
        with pytest.raises(RuntimeUnavailable) as caught:
            SecurityAnalystAgent(transport, fast_retry(1)).analyze(simplified_waf_event())
        transport.close()
    assert caught.value.reason == "read_timeout"


def test_deadline_stops_retries_before_the_attempts_run_out() -> None:
    # GIVEN a runtime that is down, a deadline of 0.3 s and fixed 0.2 s waits
    from tenacity import wait_fixed

    transport = HttpTransport(f"http://127.0.0.1:{free_port()}", connect_timeout=0.5)
    policy = RetryPolicy(max_attempts=20, deadline_s=0.3, wait=wait_fixed(0.2))
    started = time.monotonic()
    # WHEN the analyst tries
    with capture_logs() as logs, pytest.raises(RetryableError):
        SecurityAnalystAgent(transport, policy).analyze(simplified_waf_event())
    transport.close()
    # THEN it stopped on the deadline, far short of 20 attempts
    assert time.monotonic() - started < 2
    assert len([entry for entry in logs if entry["event"] == "runtime_retry"]) <= 2
