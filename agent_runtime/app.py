"""The AgentCore app: ``POST /invocations`` and ``GET /ping`` over the agent service."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from bedrock_agentcore.runtime import BedrockAgentCoreApp
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_runtime.service import AgentService
from secops_core.contract import error_body
from secops_core.errors import HTTP_STATUS, ErrorCode
from secops_core.ingest.normalize import json_too_deep
from secops_core.limits import BODY_READ_TIMEOUT_S, MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES


class ContractGuard:
    """Answers bodies the app cannot parse in the contract's error shape.

    BedrockAgentCoreApp rejects a non-JSON body before any handler runs, with its own
    ``{"error": ...}`` shape. This pure ASGI middleware reads the body first (with a
    size cap, so a huge body cannot exhaust memory), answers non-JSON and oversize
    bodies with our codes, and replays a good body to the app unchanged.
    """

    def __init__(self, app: ASGIApp, *, body_timeout_s: float = BODY_READ_TIMEOUT_S) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/invocations":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        while more:
            try:
                message = await asyncio.wait_for(
                    receive(), timeout=deadline - asyncio.get_running_loop().time()
                )
            except TimeoutError:
                await _error(
                    ErrorCode.REQUEST_TIMEOUT, f"the body did not arrive within {self.body_timeout_s:g} s"
                )(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_PAYLOAD_BYTES:
                await _error(ErrorCode.PAYLOAD_TOO_LARGE, f"payload exceeds {MAX_PAYLOAD_BYTES} bytes")(
                    scope, receive, send
                )
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = _json_problem(body)
        if problem is not None:
            await _error(ErrorCode.INVALID_JSON, problem)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _json_problem(body: bytes) -> str | None:
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"payload is not UTF-8: {exc.reason}"
    except json.JSONDecodeError as exc:
        return f"payload is not JSON: {exc.msg} at position {exc.pos}"
    except RecursionError:
        return "payload is nested too deeply"
    except ValueError as exc:
        # e.g. an integer literal longer than sys.get_int_max_str_digits()
        return f"payload is not acceptable JSON: {str(exc)[:120]}"
    # Parsed here near the bottom of the stack, the body is parsed again by the SDK much
    # deeper in it: ~970 levels passed this check and overflowed there (a plain-text 500).
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and json_too_deep(value):
        return f"payload is nested deeper than {MAX_JSON_DEPTH} levels"
    return None


def _error(code: ErrorCode, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=HTTP_STATUS[code])


def create_app(service: AgentService, *, body_timeout_s: float = BODY_READ_TIMEOUT_S) -> BedrockAgentCoreApp:
    """Build the AgentCore app around a configured service."""
    app = BedrockAgentCoreApp(middleware=[Middleware(ContractGuard, body_timeout_s=body_timeout_s)])
    # The SDK installs its own stream handler; our structlog set-up formats its records.
    app.logger.handlers[:] = []
    app.logger.propagate = True
    app.logger.setLevel(logging.NOTSET)

    @app.entrypoint
    def invoke(payload: Any) -> JSONResponse:
        body, status = service.invoke_with_status(payload, parsed=True)
        return JSONResponse(body, status_code=status)

    return app
