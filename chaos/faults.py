"""The fault injectors: botocore hooks for SNS and DynamoDB, a faulty model, a deadline.

- :func:`install_aws_faults` registers ``before-call`` hooks on a worker's own boto3
  clients. A hook raises the ``ClientError`` the service would have returned
  (throttling or a 5xx) before the request leaves the process, so botocore's retries do
  not absorb it: the worker's own handling sees every injected fault.
- :class:`ChaosModel` is the scripted Strands model of the tests with faults: at a rate
  it raises (a provider error, or throttling) or answers only after the runtime read
  timeout. It records every call it starts, with the event it is about.
- :class:`DeadlineTransport` gives the in-process transport the read timeout a remote
  one has: a call that does not answer in time is abandoned (it keeps running, as a
  remote runtime would) and fails the way the HTTP transport fails on a read timeout.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from botocore.exceptions import ClientError
from strands.types.content import Messages
from strands.types.exceptions import ModelThrottledException
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolChoice, ToolSpec

from chaos.evidence import EvidenceLog
from testkit.scripted_model import RecordedRequest, ScriptedModel, ToolUse, Turn
from worker.agents.transport import Transport, classify_exception

RuntimeFault = Literal["error", "throttle", "timeout"]

# What the scripted analyst answers: severity 0, so the deterministic floor decides and
# the run can check every event's final status against its floor.
ASSESSMENT = {
    "severity_rating": 0,
    "security_analysis": "Scripted analysis for the fault-injection run.",
    "follow_up_suggestion": "None.",
    "attack_type": "scripted",
}
NARRATIVE = {"narrative": "Scripted narrative for the fault-injection run."}

# The data-plane operations the store uses; table set-up is left alone.
DYNAMODB_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem", "Query", "Scan"}
)
# (code, HTTP status) pairs the services really return for "not now".
SNS_FAULTS = (("Throttling", 400), ("InternalError", 500))
DYNAMODB_FAULTS = (("ProvisionedThroughputExceededException", 400), ("InternalServerError", 500))
WAFV2_FAULTS = (("WAFOptimisticLockException", 400),)


@dataclass(frozen=True)
class FaultRates:
    """Probabilities per call. A model call fails with ``runtime_error`` (two thirds a
    provider error, one third throttling) or stalls past the read timeout with
    ``runtime_timeout``; each SNS Publish and each DynamoDB call fails with its rate.
    """

    runtime_error: float = 0.0
    runtime_timeout: float = 0.0
    sns: float = 0.0
    dynamodb: float = 0.0
    # UpdateIPSet losing its LockToken, as when people and replicas edit one set.
    wafv2_lock: float = 0.0

    @classmethod
    def from_rate(cls, rate: float) -> FaultRates:
        """The run's single knob: timeouts at half the rate, as they cost a read timeout
        each; lost IP set locks at six times it (a storm the editor must ride out)."""
        return cls(
            runtime_error=rate,
            runtime_timeout=rate / 2,
            sns=rate,
            dynamodb=rate,
            wafv2_lock=min(0.45, rate * 6),
        )

    @property
    def any(self) -> bool:
        return any((self.runtime_error, self.runtime_timeout, self.sns, self.dynamodb, self.wafv2_lock))


class FaultInjector:
    """Rolls the dice for every injection point; thread-safe, seeded per process."""

    def __init__(self, rates: FaultRates, *, seed: int, evidence: EvidenceLog) -> None:
        self.rates = rates
        self.evidence = evidence
        self._rng = random.Random(seed)  # noqa: S311 - fault dice, not crypto
        self._lock = threading.Lock()

    def _roll(self) -> float:
        with self._lock:
            return self._rng.random()

    def runtime_fault(self) -> RuntimeFault | None:
        roll = self._roll()
        error, timeout = self.rates.runtime_error, self.rates.runtime_timeout
        if roll < error * 2 / 3:
            return "error"
        if roll < error:
            return "throttle"
        if roll < error + timeout:
            return "timeout"
        return None

    def aws_fault(self, rate: float, choices: tuple[tuple[str, int], ...]) -> tuple[str, int] | None:
        roll = self._roll()
        if roll >= rate:
            return None
        # The same roll picks the kind: no second draw, so the sequence stays replayable.
        return choices[int(roll / rate * len(choices)) % len(choices)]


# ---- SNS and DynamoDB ----------------------------------------------------------------------


def install_aws_faults(clients: Any, injector: FaultInjector) -> None:
    """Hook SNS Publish, DynamoDB's data-plane calls and WAFv2 UpdateIPSet of ``clients``
    (a ``Clients``)."""

    def sns_publish(model: Any, **_: Any) -> None:
        fault = injector.aws_fault(injector.rates.sns, SNS_FAULTS)
        if fault is not None:
            _raise(injector, "sns", model.name, *fault)

    def dynamodb_call(model: Any, **_: Any) -> None:
        if model.name not in DYNAMODB_OPERATIONS:
            return
        fault = injector.aws_fault(injector.rates.dynamodb, DYNAMODB_FAULTS)
        if fault is not None:
            _raise(injector, "dynamodb", model.name, *fault)

    def wafv2_update(model: Any, **_: Any) -> None:
        fault = injector.aws_fault(injector.rates.wafv2_lock, WAFV2_FAULTS)
        if fault is not None:
            _raise(injector, "wafv2", model.name, *fault)

    if injector.rates.wafv2_lock and getattr(clients, "wafv2", None) is not None:
        clients.wafv2.meta.events.register("before-call.wafv2.UpdateIPSet", wafv2_update)
    if injector.rates.sns:
        clients.sns.meta.events.register("before-call.sns.Publish", sns_publish)
    if injector.rates.dynamodb:
        clients.dynamodb.meta.events.register("before-call.dynamodb", dynamodb_call)


def _raise(injector: FaultInjector, service: str, operation: str, code: str, status: int) -> None:
    injector.evidence.record("fault", target=f"{service}.{operation}", code=code)
    raise ClientError(
        {
            "Error": {"Code": code, "Message": f"injected by the chaos run ({service} {operation})"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "chaos"},
        },
        operation,
    )


# ---- the runtime ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeCall:
    """What a runtime call is about, for the model's evidence."""

    action: str
    event_key: str | None


_CURRENT_CALL: contextvars.ContextVar[RuntimeCall | None] = contextvars.ContextVar(
    "chaos_runtime_call", default=None
)


class ChaosModel(ScriptedModel):
    """The scripted model with injected failures, recording every call it starts."""

    def __init__(
        self,
        injector: FaultInjector,
        *,
        latency_s: float,
        stall_s: float,
    ) -> None:
        super().__init__([ToolUse(ASSESSMENT)], model_id="chaos-scripted", latency_s=latency_s, cycle=True)
        self.injector = injector
        self.stall_s = stall_s

    def _next_turn(self, request: RecordedRequest) -> Turn:
        turn = super()._next_turn(request)
        # The monitor's narrator offers its own structured-output tool.
        return ToolUse(NARRATIVE) if "PatternNarrative" in request.tool_names else turn

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: ToolChoice | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[StreamEvent, None]:
        call = _CURRENT_CALL.get()
        fault = self.injector.runtime_fault()
        self.injector.evidence.record(
            "model_call",
            key=call.event_key if call else None,
            action=call.action if call else None,
            fault=fault,
        )
        if fault == "timeout":
            await asyncio.sleep(self.stall_s)
        elif fault == "error":
            raise RuntimeError("injected by the chaos run: model provider failure")
        elif fault == "throttle":
            raise ModelThrottledException("injected by the chaos run: model throttled")
        async for event in super().stream(
            messages, tool_specs, system_prompt, tool_choice=tool_choice, **kwargs
        ):
            yield event


class DeadlineTransport:
    """A transport with a read timeout around one without (the in-process one)."""

    def __init__(self, inner: Transport, *, read_timeout_s: float, evidence: EvidenceLog) -> None:
        self.inner = inner
        self.read_timeout_s = read_timeout_s
        self.evidence = evidence

    def invoke(self, payload: dict[str, Any], *, session_id: str | None = None) -> dict[str, Any]:
        event = payload.get("event")
        call = RuntimeCall(
            action=str(payload.get("action")),
            event_key=event.get("event_key") if isinstance(event, dict) else None,
        )
        outcome: dict[str, Any] = {}

        def run() -> None:
            _CURRENT_CALL.set(call)
            try:
                outcome["body"] = self.inner.invoke(payload, session_id=session_id)
            except BaseException as exc:
                outcome["error"] = exc

        # A daemon thread: an abandoned call must not keep a stopping process alive.
        thread = threading.Thread(
            target=contextvars.copy_context().run, args=(run,), name="chaos-runtime-call", daemon=True
        )
        thread.start()
        thread.join(self.read_timeout_s)
        if thread.is_alive():
            self.evidence.record("runtime_timeout", key=call.event_key, action=call.action)
            raise classify_exception(httpx.ReadTimeout("chaos: no answer within the read timeout"))
        if "error" in outcome:
            raise outcome["error"]
        body: dict[str, Any] = outcome["body"]
        return body

    def close(self) -> None:
        self.inner.close()
