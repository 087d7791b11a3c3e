"""The AgentCore transport up to the wire: botocore's Stubber on a real bedrock-agentcore client.

Request shape (ARN, qualifier, session id, payload bytes) is asserted by the Stubber's
expected params; AgentCore's error classes are injected as the service would return
them, and each must come out as the worker's typed error with the right retry
behaviour. Bodies of successful answers come from the real runtime service.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import Stubber
from structlog.testing import capture_logs
from tenacity import wait_none

from agent_runtime.service import AgentService, build_service
from agent_runtime.settings import RuntimeSettings
from tests.fixtures.agent_samples import (
    MONITOR_NOW,
    native_waf_event,
    probe_series,
    simplified_waf_event,
)
from tests.fixtures.moto_server import free_port
from worker.agents import (
    Agents,
    RetryPolicy,
    SecurityAnalystAgent,
    TransportConfigError,
    session_id_for,
)
from worker.agents.agentcore import AgentCoreTransport
from worker.agents.transport import (
    MIN_SESSION_ID_CHARS,
    classify_error_body,
    classify_http_status,
    decode_body,
)
from worker.errors import PermanentError, RetryableError, RuntimeUnavailable

ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/secops_agent-Xy12AbCdEf"
OPERATION = "invoke_agent_runtime"


@pytest.fixture(scope="module")
def service() -> AgentService:
    return build_service(RuntimeSettings(provider="rules"))


@pytest.fixture
def client() -> Any:
    return boto3.client("bedrock-agentcore", region_name="us-east-1")


@pytest.fixture
def stubber(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture
def calls(client: Any) -> list[dict[str, Any]]:
    """Every InvokeAgentRuntime call the client makes (the Stubber answers them)."""
    seen: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-parameter-build.bedrock-agentcore.InvokeAgentRuntime",
        lambda params, **_: seen.append(dict(params)),
    )
    return seen


def fast_retry(attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, deadline_s=30, wait=wait_none())


def wire(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def streaming(body: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(body), len(body))


def json_answer(body: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": "application/json", "response": streaming(wire(body)), "statusCode": 200}


def analyze_request(event: Any) -> dict[str, Any]:
    return {"action": "analyze", "event": event.model_dump(mode="json")}


def expected(payload: dict[str, Any], session_id: str) -> dict[str, Any]:
    return {
        "agentRuntimeArn": ARN,
        "qualifier": "DEFAULT",
        "runtimeSessionId": session_id,
        "payload": wire(payload),
        "contentType": "application/json",
        "accept": "application/json",
    }


# ---- request shape and answers -------------------------------------------------------


def test_analyze_sends_arn_qualifier_session_and_json_payload(
    client: Any, stubber: Stubber, service: AgentService
) -> None:
    # GIVEN a native WAF record and the runtime's real answer for it
    event = native_waf_event()
    request = analyze_request(event)
    session_id = session_id_for(event.event_key)
    # WHEN the analyst analyzes the same event twice (a redelivery)
    for _ in range(2):
        stubber.add_response(OPERATION, json_answer(service.invoke(request)), expected(request, session_id))
    analyst = SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry())
    first = analyst.analyze(event)
    second = analyst.analyze(event)
    # THEN both calls carried the same >= 33-character session id and parsed fully
    assert len(session_id) >= MIN_SESSION_ID_CHARS
    assert first == second
    assert first.event_key == event.event_key
    assert first.analysis.severity_floor == 3
    assert first.triage.action == "monitor"


def test_session_ids_differ_per_event_and_are_deterministic() -> None:
    a, b = simplified_waf_event(), native_waf_event()
    assert session_id_for(a.event_key) == session_id_for(a.event_key)
    assert session_id_for(a.event_key) != session_id_for(b.event_key)
    assert all(MIN_SESSION_ID_CHARS <= len(session_id_for(e.event_key)) <= 256 for e in (a, b))


def test_qualifier_and_short_session_ids_reach_the_wire(client: Any, stubber: Stubber) -> None:
    # GIVEN a transport on an explicit endpoint and a caller's short session id
    payload = {"action": "monitor", "hours": 1, "events": []}
    answer = {
        "status": "success",
        "workflow": "monitor",
        "hours": 1,
        "events_considered": 0,
        "events_in_window": 0,
        "threshold": 5,
        "patterns": [],
    }
    stubber.add_response(
        OPERATION,
        json_answer(answer),
        {**expected(payload, session_id_for("short")), "qualifier": "canary"},
    )
    # WHEN it is invoked with an id AgentCore would reject as too short
    body = AgentCoreTransport(ARN, qualifier="canary", client=client).invoke(payload, session_id="short")
    # THEN the id was hashed to a valid one and the body came back untouched
    assert body == answer


def test_event_stream_answer_parses_to_the_final_object(
    client: Any, stubber: Stubber, service: AgentService
) -> None:
    # GIVEN AgentCore streaming the answer as server-sent events, a partial one first
    event = simplified_waf_event()
    final = service.invoke(analyze_request(event))
    sse = b'data: {"partial": true, "text": "thinking"}\n\ndata: ' + json.dumps(final).encode() + b"\n\n"
    stubber.add_response(
        OPERATION,
        {"contentType": "text/event-stream", "response": streaming(sse), "statusCode": 200},
    )
    # WHEN the analyst reads it
    result = SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry()).analyze(event)
    # THEN the final object with a status is the response
    assert result.event_key == event.event_key
    assert result.analysis.attack_type


def test_all_three_agents_over_agentcore(client: Any, stubber: Stubber, service: AgentService) -> None:
    # GIVEN the runtime's answers for triage_only and monitor
    event = simplified_waf_event()
    series = probe_series(3)
    triage_request = {
        "action": "triage_only",
        "event": event.model_dump(mode="json"),
        "analysis": {"severity_rating": 4, "attack_type": "SQL injection"},
    }
    stubber.add_response(OPERATION, json_answer(service.invoke(triage_request)))
    monitor_request = {
        "action": "monitor",
        "hours": 24,
        "threshold": 3,
        "events": [e.model_dump(mode="json") for e in series],
        "now": MONITOR_NOW.isoformat(),
    }
    stubber.add_response(OPERATION, json_answer(service.invoke(monitor_request)))
    agents = Agents.over(AgentCoreTransport(ARN, client=client), fast_retry())
    # WHEN the triager and the monitor are called
    triaged = agents.triager.triage_only(event, {"severity_rating": 4, "attack_type": "SQL injection"})
    monitored = agents.monitor.monitor(series, hours=24, threshold=3, now=MONITOR_NOW)
    # THEN both parse into their typed responses
    assert triaged.triage.action == "escalate"
    assert triaged.analysis.analyzed_by == "caller"
    assert [p.count for p in monitored.patterns] == [3]
    assert monitored.patterns[0].threshold_met


# ---- AgentCore error classes ---------------------------------------------------------

RETRIED = [
    ("ThrottlingException", 429, RuntimeUnavailable),
    ("ServiceQuotaExceededException", 402, RuntimeUnavailable),
    ("InternalServerException", 500, RuntimeUnavailable),
    ("RetryableConflictException", 409, RetryableError),
]


@pytest.mark.parametrize(("code", "status", "error_type"), RETRIED)
def test_retryable_agentcore_errors_are_retried_then_succeed(
    client: Any,
    stubber: Stubber,
    calls: list[dict[str, Any]],
    service: AgentService,
    code: str,
    status: int,
    error_type: type[Exception],
) -> None:
    # GIVEN AgentCore failing twice with a retryable error, then answering
    event = simplified_waf_event()
    for _ in range(2):
        stubber.add_client_error(
            OPERATION, service_error_code=code, service_message="try later", http_status_code=status
        )
    stubber.add_response(OPERATION, json_answer(service.invoke(analyze_request(event))))
    analyst = SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry())
    # WHEN the analyst analyzes the event
    with capture_logs() as logs:
        result = analyst.analyze(event)
    # THEN it succeeded on the third call, in one session, and logged each retry
    assert result.event_key == event.event_key
    assert len(calls) == 3
    assert {c["runtimeSessionId"] for c in calls} == {session_id_for(event.event_key)}
    retries = [entry for entry in logs if entry["event"] == "runtime_retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert all(r["event_key"] == event.event_key for r in retries)
    assert all(r["error_type"] == error_type.__name__ for r in retries)
    assert all(r["reason"] == code for r in retries)


CONFIG = [
    ("ValidationException", 400),
    ("AccessDeniedException", 403),
    ("ResourceNotFoundException", 404),
    ("UnauthorizedException", 401),
    ("RuntimeClientError", 424),
]


@pytest.mark.parametrize(("code", "status"), CONFIG)
def test_configuration_errors_are_not_retried_and_not_permanent(
    client: Any, stubber: Stubber, calls: list[dict[str, Any]], code: str, status: int
) -> None:
    # GIVEN AgentCore rejecting the call itself (wrong ARN, missing permission ...)
    stubber.add_client_error(
        OPERATION, service_error_code=code, service_message="no such runtime", http_status_code=status
    )
    analyst = SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry())
    # WHEN an event is analyzed
    with pytest.raises(TransportConfigError) as caught:
        analyst.analyze(simplified_waf_event())
    # THEN it failed once, as a configuration error the DLQ must never see
    assert len(calls) == 1
    assert caught.value.reason == code
    assert not isinstance(caught.value, PermanentError | RetryableError)


def test_throttling_past_all_attempts_is_runtime_unavailable(
    client: Any, stubber: Stubber, calls: list[dict[str, Any]]
) -> None:
    # GIVEN AgentCore throttling every call
    for _ in range(3):
        stubber.add_client_error(OPERATION, service_error_code="ThrottlingException", http_status_code=429)
    analyst = SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry(3))
    # WHEN the analyst exhausts its attempts
    with pytest.raises(RuntimeUnavailable) as caught:
        analyst.analyze(simplified_waf_event())
    # THEN exactly max_attempts calls were made and the circuit-opening error surfaced
    assert len(calls) == 3
    assert caught.value.reason == "ThrottlingException"


WRAPPED = [
    # AgentCore drops the container's body on a non-2xx and reports only its status.
    (422, PermanentError, "runtime_http_422"),
    (413, PermanentError, "runtime_http_413"),
    (400, PermanentError, "runtime_http_400"),
    (503, RuntimeUnavailable, "runtime_http_503"),
    (502, RuntimeUnavailable, "runtime_http_502"),
    (500, RetryableError, "runtime_http_500"),
    (404, TransportConfigError, "runtime_http_404"),
]


@pytest.mark.parametrize(("status", "error_type", "reason"), WRAPPED)
def test_container_status_wrapped_in_runtime_client_error(
    client: Any, stubber: Stubber, status: int, error_type: type[Exception], reason: str
) -> None:
    # GIVEN AgentCore reporting the container's HTTP status as RuntimeClientError
    stubber.add_client_error(
        OPERATION,
        service_error_code="RuntimeClientError",
        service_message=(
            f"Received error ({status}) from runtime. Please check your CloudWatch logs for more information."
        ),
        http_status_code=424,
    )
    # WHEN one attempt is made
    with pytest.raises(error_type) as caught:
        SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry(1)).analyze(
            simplified_waf_event()
        )
    # THEN the container's status decides the class
    assert type(caught.value) is error_type
    assert caught.value.reason == reason


def test_runtime_initialization_timeout_is_unavailable(client: Any, stubber: Stubber) -> None:
    stubber.add_client_error(
        OPERATION,
        service_error_code="RuntimeClientError",
        service_message="Runtime initialization time exceeded. Please make sure that "
        "initialization completes in 60s.",
        http_status_code=424,
    )
    with pytest.raises(RuntimeUnavailable):
        SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry(1)).analyze(
            simplified_waf_event()
        )


# ---- contract errors carried in a 200 answer -----------------------------------------


def error_answer(code: str) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "message": "x", "retryable": False}}


def test_model_error_body_is_retried_then_succeeds(
    client: Any, stubber: Stubber, calls: list[dict[str, Any]], service: AgentService
) -> None:
    event = simplified_waf_event()
    stubber.add_response(OPERATION, json_answer(error_answer("model_error")))
    stubber.add_response(OPERATION, json_answer(service.invoke(analyze_request(event))))
    result = SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry()).analyze(event)
    assert result.event_key == event.event_key
    assert len(calls) == 2


def test_invalid_event_body_is_permanent_and_not_retried(
    client: Any, stubber: Stubber, calls: list[dict[str, Any]]
) -> None:
    stubber.add_response(OPERATION, json_answer(error_answer("invalid_event")))
    with pytest.raises(PermanentError) as caught:
        SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry()).analyze(
            simplified_waf_event()
        )
    assert caught.value.reason == "invalid_event"
    assert len(calls) == 1


def test_answer_outside_the_contract_is_a_configuration_error(client: Any, stubber: Stubber) -> None:
    # GIVEN an ARN that points at some other agent, which answers in its own shape
    stubber.add_response(OPERATION, json_answer({"result": "Hello! How can I help?"}))
    with pytest.raises(TransportConfigError) as caught:
        SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry()).analyze(
            simplified_waf_event()
        )
    assert caught.value.reason == "contract_mismatch"


# ---- connectivity on a real socket ---------------------------------------------------


def test_endpoint_refusing_connections_is_runtime_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a client whose endpoint is a loopback port nobody listens on
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", f"http://127.0.0.1:{free_port()}")
    transport = AgentCoreTransport(ARN, connect_timeout=0.5, read_timeout=0.5)
    # WHEN an event is analyzed with two attempts
    with pytest.raises(RuntimeUnavailable) as caught:
        SecurityAnalystAgent(transport, fast_retry(2)).analyze(simplified_waf_event())
    # THEN the failure is connectivity, not the event
    assert caught.value.reason == "connection"
    transport.close()


def test_endpoint_that_never_answers_hits_the_read_timeout() -> None:
    # GIVEN a server that accepts connections and then says nothing
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    client = boto3.client(
        "bedrock-agentcore",
        region_name="us-east-1",
        endpoint_url=endpoint,
        config=Config(connect_timeout=1, read_timeout=0.3, retries={"max_attempts": 1}),
    )
    # WHEN one attempt is made
    try:
        with pytest.raises(RuntimeUnavailable) as caught:
            SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry(1)).analyze(
                simplified_waf_event()
            )
    finally:
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()
    # THEN the read timeout is classified as the runtime being unavailable
    assert caught.value.reason == "connection"


def test_botocore_makes_one_call_per_attempt_tenacity_owns_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN an endpoint that accepts each connection and closes it without answering
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    connections: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            connections.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", f"http://127.0.0.1:{port}")
    transport = AgentCoreTransport(ARN, connect_timeout=1, read_timeout=1)
    # WHEN the analyst tries twice
    try:
        with pytest.raises(RuntimeUnavailable):
            SecurityAnalystAgent(transport, fast_retry(2)).analyze(simplified_waf_event())
    finally:
        transport.close()
        stop.set()
        thread.join(timeout=2)
        listener.close()
    # THEN exactly two connections were made: botocore added no retries of its own
    assert len(connections) == 2


# ---- the classification table itself -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (429, RuntimeUnavailable),
        (502, RuntimeUnavailable),
        (503, RuntimeUnavailable),
        (504, RuntimeUnavailable),
        (500, RetryableError),
        (507, RetryableError),
        (413, PermanentError),
        (401, TransportConfigError),
        (403, TransportConfigError),
        (404, TransportConfigError),
    ],
)
def test_bare_http_status_classification(status: int, error_type: type[Exception]) -> None:
    assert type(classify_http_status(status)) is error_type


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        ("model_error", RetryableError),
        ("internal_error", RetryableError),
        ("model_throttled", RuntimeUnavailable),
        ("invalid_event", PermanentError),
        ("invalid_json", PermanentError),
        ("payload_too_large", PermanentError),
        ("model_output_invalid", PermanentError),
    ],
)
def test_contract_error_classification(code: str, error_type: type[Exception]) -> None:
    error = classify_error_body(error_answer(code))
    assert type(error) is error_type
    assert error.reason == code


def test_unknown_contract_code_follows_its_retryable_flag() -> None:
    newer = {"status": "error", "error": {"code": "gpu_melted", "message": "", "retryable": True}}
    assert type(classify_error_body(newer)) is RetryableError
    assert type(classify_error_body(error_answer("gpu_melted"))) is PermanentError


def test_event_stream_decoding_edge_cases() -> None:
    # Multi-line data joins with "\n"; a pre-serialized JSON string is decoded once more.
    multi = b'data: {"status": "success",\ndata:  "workflow": "monitor"}\n\n'
    assert decode_body(multi, "text/event-stream") == {"status": "success", "workflow": "monitor"}
    as_string = b"data: " + json.dumps(json.dumps({"status": "error"})).encode() + b"\n\n"
    assert decode_body(as_string, "text/event-stream; charset=utf-8") == {"status": "error"}
    crashed = b'data: {"error": "boom", "error_type": "KeyError", "message": "x"}\n\n'
    with pytest.raises(RetryableError):
        decode_body(crashed, "text/event-stream")
    with pytest.raises(ValueError):
        decode_body(b"data: not json\n\n", "text/event-stream")


def test_answer_for_another_event_is_rejected(client: Any, stubber: Stubber, service: AgentService) -> None:
    # GIVEN a runtime (or a cache in front of it) answering about a different event
    other = native_waf_event()
    stubber.add_response(OPERATION, json_answer(service.invoke(analyze_request(other))))
    # WHEN the analyst asks about the simplified event
    with pytest.raises(TransportConfigError) as caught:
        SecurityAnalystAgent(AgentCoreTransport(ARN, client=client), fast_retry()).analyze(
            simplified_waf_event()
        )
    # THEN the answer is not accepted as this event's analysis
    assert caught.value.reason == "contract_mismatch"
