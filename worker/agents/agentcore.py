"""The AgentCore transport: ``InvokeAgentRuntime`` through boto3's ``bedrock-agentcore``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from worker.agents.transport import (
    MIN_SESSION_ID_CHARS,
    classify_exception,
    new_session_id,
    response_body,
    session_id_for,
)
from worker.platform import aws

if TYPE_CHECKING:
    from types_boto3_bedrock_agentcore.client import BedrockAgentCoreClient

log = structlog.get_logger("worker.agents")

JSON = "application/json"


class AgentCoreTransport:
    """Invokes an agent runtime hosted on Amazon Bedrock AgentCore.

    The client makes exactly one attempt per call (``total_max_attempts=1``): the
    facades' :class:`~worker.agents.transport.RetryPolicy` owns retries, so backoff,
    the deadline and the retry log are the same for every transport and attempts do
    not multiply (botocore's 3 x tenacity's 4 would be 12 calls).
    """

    def __init__(
        self,
        runtime_arn: str,
        qualifier: str = "DEFAULT",
        client: BedrockAgentCoreClient | None = None,
        *,
        region: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 60.0,
        max_pool_connections: int = 50,
    ) -> None:
        if not runtime_arn:
            raise ValueError("AgentCoreTransport needs the agent runtime ARN")
        self.runtime_arn = runtime_arn
        self.qualifier = qualifier
        self._client = client or aws.aws_session(_region_of(runtime_arn) or region).client(
            "bedrock-agentcore",
            config=Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                # total_max_attempts, not max_attempts: botocore's max_attempts counts
                # retries after the first call, so max_attempts=1 would mean two calls.
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=max_pool_connections,
            ),
        )

    def invoke(self, payload: dict[str, Any], *, session_id: str | None = None) -> dict[str, Any]:
        """Invoke the runtime once and return its contract body (see ``Transport``)."""
        session = _session(session_id)
        try:
            response = self._client.invoke_agent_runtime(
                agentRuntimeArn=self.runtime_arn,
                qualifier=self.qualifier,
                runtimeSessionId=session,
                payload=json.dumps(payload, separators=(",", ":")).encode("utf-8"),
                contentType=JSON,
                accept=JSON,
            )
            stream = response["response"]
            try:
                raw = stream.read()
            finally:
                stream.close()
        except (ClientError, BotoCoreError) as exc:
            raise classify_exception(exc) from exc
        status = int(response.get("statusCode") or 200)
        log.debug(
            "agentcore_invoked",
            status=status,
            content_type=response.get("contentType"),
            bytes=len(raw),
            session_id=session,
        )
        return response_body(status, response.get("contentType"), raw)

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()


def _session(session_id: str | None) -> str:
    if session_id is None:
        return new_session_id()
    if len(session_id) < MIN_SESSION_ID_CHARS:
        # Hashed rather than padded: still deterministic, still within AgentCore's limits.
        return session_id_for(session_id)
    return session_id


def _region_of(arn: str) -> str | None:
    # arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>: the runtime's own region
    # is the only one that can serve it, whatever AWS_REGION says.
    parts = arn.split(":")
    if arn.startswith("arn:") and len(parts) > 4 and parts[3]:
        return parts[3]
    return None
