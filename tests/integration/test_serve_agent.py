"""The agent runtime served as its own process: ``python -m agent_runtime`` and ``secops-agent``.

The same app AgentCore runs in its container, reached over HTTP on a free port:
``GET /ping`` answers healthy, ``POST /invocations`` analyzes, and SIGTERM stops it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from testkit.events import simplified
from tests.fixtures.moto_server import free_port
from tests.fixtures.worker_process import cli_env, wait_for

pytestmark = pytest.mark.slow


def _ping(base: str) -> dict[str, object] | None:
    try:
        response = httpx.get(f"{base}/ping", timeout=1.0)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-m", "agent_runtime"], [str(Path(sys.executable).with_name("secops-agent"))]],
    ids=["python-m-agent_runtime", "secops-agent"],
)
def test_the_runtime_serves_ping_and_invocations_and_stops_on_sigterm(command: list[str]) -> None:
    # GIVEN the runtime started on a free port with the offline rules provider
    port = free_port()
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env=cli_env(None, provider="rules", log_format="json"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # WHEN it is up
        ping = wait_for(lambda: _ping(base), timeout=30, interval=0.2, what="GET /ping")
        answer = httpx.post(
            f"{base}/invocations",
            json={"action": "analyze", "event": simplified("served-1", action="ALLOW")},
            timeout=10,
        )

        # THEN it is healthy and analyzes
        assert ping["status"] == "Healthy"
        assert answer.status_code == 200
        body = answer.json()
        assert (body["status"], body["workflow"], body["event_key"]) == ("success", "analyze", "evt#served-1")
        assert (body["analysis"]["severity_rating"], body["triage"]["action"]) == (4, "escalate")
    finally:
        # AND SIGTERM stops it promptly and cleanly (status 0, as ECS and AgentCore expect)
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
        stderr = process.stderr.read().decode() if process.stderr else ""
    assert code == 0, stderr
    assert time.monotonic() - stopped_at < 10
    assert "Traceback" not in stderr
