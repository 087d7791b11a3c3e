"""The HTTP transport: the runtime's own ``POST /invocations`` and ``GET /ping``.

Used against a runtime container (``compose.localstack.yml``, or ``python -m
agent_runtime``) without AgentCore in front. It sends the same session header AgentCore
would, so the runtime cannot tell the two apart.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import structlog

from worker.agents.transport import SESSION_HEADER, classify_exception, response_body

log = structlog.get_logger("worker.agents")

# What /ping answers when the runtime can take work (bedrock_agentcore PingStatus).
_HEALTHY = frozenset({"Healthy", "HealthyBusy"})
# /ping is a liveness probe: it answers at once or the runtime is not well.
_PING_TIMEOUT_S = 2.0


class HttpTransport:
    """Posts requests to ``{base_url}/invocations`` over one pooled httpx client."""

    def __init__(
        self,
        base_url: str,
        connect_timeout: float = 3.0,
        read_timeout: float = 60.0,
        *,
        max_connections: int = 64,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(
            base_url=self.base_url,
            # Read, write and pool waits share the read budget; connecting gets its own.
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            # The runtime is a known service: a redirect means a wrong URL, not a move.
            follow_redirects=False,
        )

    def invoke(self, payload: dict[str, Any], *, session_id: str | None = None) -> dict[str, Any]:
        """POST the payload once and return the contract body (see ``Transport``)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if session_id is not None:
            headers[SESSION_HEADER] = session_id
        content = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        try:
            response = self._client.post("/invocations", content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise classify_exception(exc) from exc
        log.debug("runtime_http_answered", status=response.status_code, bytes=len(response.content))
        return response_body(response.status_code, response.headers.get("content-type"), response.content)

    def health(self) -> bool:
        """True when ``GET /ping`` says the runtime is Healthy or HealthyBusy."""
        try:
            response = self._client.get("/ping", timeout=_PING_TIMEOUT_S)
            return response.status_code == 200 and response.json().get("status") in _HEALTHY
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
