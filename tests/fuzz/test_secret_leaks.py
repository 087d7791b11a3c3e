"""A secret placed in any attacker-controlled field leaks nowhere (issue 10).

Hypothesis places a generated secret, shaped like a credential (JWT, AWS keys, bearer
token, API key) or carried under a secret name (header, query, JSON query, path
parameter), into a WAF log record, runs it through the runtime with a scripted model,
and looks for it in what the model received, the response the worker stores, every log
line, and the incident milestone page the worker renders from that response.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import structlog
from hypothesis import example, given
from hypothesis import strategies as st

from agent_runtime.analyst import SecurityAnalyst
from agent_runtime.service import AgentService
from secops_core.contract import AnalyzeResponse
from testkit.events import waf_record
from testkit.scripted_model import ScriptedModel
from tests.fuzz import strategies as s
from tests.unit.test_notifier_sanitize import make_incident
from worker.incidents.milestones import OPENED
from worker.notify.render import incident_notification

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPPER_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ASSESSMENT = {
    "severity_rating": 5,
    "security_analysis": "A SQL injection reached the application.",
    "follow_up_suggestion": "Check the query parameters.",
    "attack_type": "SQL injection",
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


opaque = st.text(alphabet=ALNUM, min_size=12, max_size=24).map(lambda t: f"Zq9{t}")
jwts = st.tuples(st.binary(min_size=6, max_size=30), st.binary(min_size=6, max_size=30), opaque).map(
    lambda parts: f"eyJ{_b64url(b'{' + parts[0])}.{_b64url(parts[1])}.{parts[2]}"
)
aws_key_ids = st.text(alphabet=UPPER_DIGITS, min_size=16, max_size=16).map(lambda t: f"AKIA{t}")
aws_secrets = st.text(alphabet=ALNUM, min_size=37, max_size=37).map(lambda t: f"Ab1{t}")
api_keys = st.text(alphabet=ALNUM, min_size=20, max_size=48).map(lambda t: f"sk-proj-{t}")
# (the secret, how to write it so that it is secret by shape)
shaped = st.one_of(
    jwts.map(lambda v: (v, v)),
    aws_key_ids.map(lambda v: (v, v)),
    aws_secrets.map(lambda v: (v, v)),
    api_keys.map(lambda v: (v, v)),
    opaque.map(lambda v: (v, f"Bearer {v}")),
)
SECRET_PARAMS = [
    "key",
    "sid",
    "code",
    "state",
    "access_token",
    "id_token",
    "refresh_token",
    "password",
    "api_key",
    "jsessionid",
    "X-Amz-Signature",
    "clientSecret",
]
SECRET_HEADERS = [
    "X-Forwarded-Cookie",
    "Cookie2",
    "X-Functions-Key",
    "X-My-Token",
    "X-Session-Id",
    "X-Hub-Signature",
    "X-Credential",
    "X-Auth",
    "Cookie",
]
PLACES_SHAPED = ["path", "query_value", "user_agent", "header_value", "referer", "json_query"]
PLACES_NAMED = ["query", "json_query", "path_param", "header", "referer", "encoded_json_query"]


def _place(record: dict[str, Any], place: str, written: str, name: str) -> dict[str, Any]:
    request = dict(record["httpRequest"])
    headers = list(request["headers"])
    if place == "path":
        request["uri"] = f"/api/{quote(written, safe='/')}/items"
    elif place == "path_param":
        request["uri"] = f"/app;{name}={written}/items"
    elif place == "query_value":
        request["args"] = f"id=1%27%20OR%201%3D1&q={quote(written, safe='')}"
    elif place == "query":
        request["args"] = f"id=1%27%20OR%201%3D1&{name}={quote(written, safe='')}&page=2"
    elif place == "json_query":
        request["args"] = json.dumps({"id": "1' OR 1=1", name or "q": written})
    elif place == "encoded_json_query":
        request["args"] = quote(json.dumps({"id": "1", name: written}), safe="")
    elif place == "user_agent":
        headers = [h for h in headers if h["name"] != "User-Agent"]
        headers.append({"name": "User-Agent", "value": f"curl/8.0 {written}"})
    elif place == "header_value":
        headers.append({"name": "X-Custom-Trace", "value": f"trace {written} end"})
    elif place == "referer":
        query = f"{name}={quote(written, safe='')}" if name else f"q={quote(written, safe='')}"
        headers.append({"name": "Referer", "value": f"https://shop.example.com/cb?{query}"})
    elif place == "header":
        headers.append({"name": name, "value": written})
    request["headers"] = headers
    return {**record, "httpRequest": request}


def _run(record: dict[str, Any]) -> tuple[dict[str, Any], ScriptedModel, str]:
    model = ScriptedModel([ASSESSMENT], cycle=True)
    service = AgentService(SecurityAnalyst(model))
    with structlog.testing.capture_logs() as logs:
        body = service.invoke({"action": "analyze", "event": record})
    return body, model, json.dumps(logs, default=str)


def _assert_nowhere(secret: str, record: dict[str, Any]) -> None:
    # WHEN the runtime analyzes the event
    body, model, logs = _run(record)

    # THEN the secret is not in what the model received
    assert body["status"] == "success", body
    assert model.calls >= 1
    for request in model.requests:
        assert secret not in json.dumps([request.messages, request.system_prompt], default=str)
    # AND not in the response the worker stores, nor in any log line
    assert secret not in json.dumps(body)
    assert secret not in logs
    # AND not in the incident milestone page rendered from that response
    response = AnalyzeResponse.model_validate(body)
    notification = incident_notification(
        "arn:aws:sns:us-east-1:000000000000:secops-critical",
        incident=make_incident(response.event),
        milestone=OPENED,
        event=response.event,
        analysis=response.analysis,
    )
    assert secret not in json.dumps(vars(notification), default=str)


@s.fuzz_settings(120)
@given(secret=shaped, place=st.sampled_from(PLACES_SHAPED))
@example(
    secret=("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    place="path",
)
def test_a_secret_shaped_value_leaks_nowhere(secret: tuple[str, str], place: str) -> None:
    # GIVEN a WAF record (floor 4) with a credential-shaped value in one field
    value, written = secret
    _assert_nowhere(value, _place(waf_record(counted=True), place, written, ""))


@s.fuzz_settings(120)
@given(value=opaque, name=st.sampled_from(SECRET_PARAMS), place=st.sampled_from(PLACES_NAMED))
def test_a_value_under_a_secret_name_leaks_nowhere(value: str, name: str, place: str) -> None:
    # GIVEN an opaque secret under a secret parameter or header name
    header = SECRET_HEADERS[len(value) % len(SECRET_HEADERS)]
    _assert_nowhere(
        value, _place(waf_record(counted=True), place, value, header if place == "header" else name)
    )


def test_an_ordinary_search_field_is_kept_for_the_analyst() -> None:
    # GIVEN an attack in a field whose name only contains a secret word
    record = waf_record(counted=True)
    record["httpRequest"] = {**record["httpRequest"], "args": "keyword=1%27%20UNION%20SELECT&zipcode=12345"}

    body, model, _ = _run(record)

    # THEN the model still sees the attack
    assert "UNION" in model.requests[0].prompt
    assert "12345" in json.dumps(body)
