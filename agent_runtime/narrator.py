"""A model-written narrative for a monitor pattern (the rules provider writes a template).

The grouping, counts and threshold are code; a model only adds prose for the
notification. A narrative is not a decision, so when the model fails the template
stands in and the failure is logged, never raised.
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import BaseModel, Field, field_validator

from agent_runtime.prompt_safety import PATTERN_SYSTEM_PROMPT, build_pattern_prompt
from secops_core.contract import Pattern
from secops_core.text import sanitize_text

log = structlog.get_logger("agent_runtime.narrator")

NARRATIVE_CHARS = 1200


class PatternNarrative(BaseModel):
    """The model's structured answer."""

    narrative: str = Field(
        description="Two or three plain sentences for an on-call engineer about this pattern.",
        min_length=1,
    )

    @field_validator("narrative")
    @classmethod
    def _clean(cls, value: str) -> str:
        return sanitize_text(value, NARRATIVE_CHARS)


class PatternNarrator:
    """Callable ``(Pattern) -> str`` for :func:`agent_runtime.monitor.detect_patterns`."""

    def __init__(self, model: Any, *, max_turns: int = 2) -> None:
        self._model = model
        self._max_turns = max_turns

    def __call__(self, pattern: Pattern) -> str:
        from strands import Agent

        # A fresh, tool-less agent per pattern: no memory between patterns, no actions.
        agent = Agent(
            model=self._model,
            system_prompt=PATTERN_SYSTEM_PROMPT,
            tools=[],
            callback_handler=None,
            retry_strategy=None,
            name="security_monitor",
        )
        try:
            result: Any = agent(
                build_pattern_prompt(pattern),
                structured_output_model=PatternNarrative,
                limits={"turns": self._max_turns},
            )
        except Exception as exc:
            log.warning("narrative_failed", pattern_key=pattern.pattern_key, error=str(exc)[:200])
            return ""
        output = result.structured_output
        return output.narrative if isinstance(output, PatternNarrative) else ""
