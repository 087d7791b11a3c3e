"""Input tokens of a model call, counted from what the scripted model was actually sent.

No tokenizer of Amazon Nova ships in a package (and nothing may be fetched at run time),
so the count is an estimate of a byte-pair tokenizer's, made the same way before and
after a change: a run of letters is one token per five letters started, a run of digits
one per three, a run of other visible characters one per two (BPE vocabularies hold
``":"`` and ``","`` as single tokens), whitespace free. On English prose it lands near
the usual four characters per token. ``characters`` is reported beside it as the exact, tokenizer-free size.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_PIECES = re.compile(r"[^\W\d_]+|\d+|[^\w\s]+|_+", re.UNICODE)


def estimate_tokens(text: str) -> int:
    total = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        if piece[0].isdigit():
            total += math.ceil(len(piece) / 3)
        elif piece[0].isalpha():
            total += math.ceil(len(piece) / 5)
        else:
            total += math.ceil(len(piece) / 2)
    return total


@dataclass(frozen=True)
class CallSize:
    """One request's parts: the system prompt, the tool schema, the user messages."""

    system: int
    tools: int
    messages: int
    characters: int

    @property
    def total(self) -> int:
        return self.system + self.tools + self.messages


def call_size(request: Any) -> CallSize:
    """The size of one :class:`testkit.scripted_model.RecordedRequest`."""
    system = request.system_prompt or ""
    tools = json.dumps(request.tool_specs, separators=(",", ":")) if request.tool_specs else ""
    texts = [block["text"] for message in request.messages for block in message["content"] if "text" in block]
    message_text = "\n".join(texts)
    return CallSize(
        system=estimate_tokens(system),
        tools=estimate_tokens(tools),
        messages=estimate_tokens(message_text),
        characters=len(system) + len(tools) + len(message_text),
    )


def summary(requests: Iterable[Any]) -> dict[str, Any]:
    """Mean input tokens per call, by part, over every recorded call."""
    sizes = [call_size(request) for request in requests]
    if not sizes:
        return {"calls": 0}
    calls = len(sizes)

    def mean(values: Iterable[int]) -> float:
        return round(sum(values) / calls, 1)

    return {
        "calls": calls,
        "input_tokens_per_call": mean(s.total for s in sizes),
        "system_prompt_tokens": mean(s.system for s in sizes),
        "tool_schema_tokens": mean(s.tools for s in sizes),
        "event_prompt_tokens": mean(s.messages for s in sizes),
        "input_characters_per_call": mean(s.characters for s in sizes),
        "input_tokens_max": max(s.total for s in sizes),
        "estimator": "BPE-like estimate: letters/5, digits/3, symbols/2 (bench/tokens.py)",
    }


def sample_calls() -> list[Any]:
    """One analyst call for each (kind, floor) the day scenario sends the model: the
    attacker's, the scanner's and the login burst's hours and a quiet one, each event
    through the real analyst and a scripted model that records what it was sent. Seconds,
    where the whole day scenario takes many minutes."""
    from agent_runtime.analyst import SecurityAnalyst
    from bench.day_traffic import DayPlan, day_records
    from bench.flood import ConsistentModel
    from secops_core.ingest.events import normalize_event
    from secops_core.waf.floor import severity_floor

    plan = DayPlan()
    picked: dict[tuple[str, int], Any] = {}
    for hour in (plan.attacker_hour, plan.scanner_hour, plan.login_burst_hour, 0):
        for record in day_records(plan, hour):
            event = normalize_event(record.record)
            floor = severity_floor(event)
            if floor.severity:
                picked.setdefault((record.kind, floor.severity), (event, floor))
    model = ConsistentModel(latency_s=0.0)
    analyst = SecurityAnalyst(model)
    for event, floor in picked.values():
        analyst.analyze(event, floor)
    return list(model.requests)


if __name__ == "__main__":
    # python -m bench.tokens: the per-part token figures on representative events.
    print(json.dumps(summary(sample_calls()), indent=2))
