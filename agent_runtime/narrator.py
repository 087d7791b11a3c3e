"""A model-written narrative for a monitor pattern (the rules provider writes a template).

The grouping, counts and threshold are code; a model only adds prose for the
notification, and only for the patterns the worker names in ``narrate``. A narrative is
not a decision, so when the model fails the template stands in and the failure is
logged, never raised; the pattern records who wrote its narrative.
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import BaseModel, Field, field_validator

from agent_runtime.monitor import Narration
from agent_runtime.prompt_safety import PATTERN_SYSTEM_PROMPT, build_pattern_prompt
from secops_core.contract import Pattern
from secops_core.text import sanitize_text

log = structlog.get_logger("agent_runtime.narrator")

NARRATIVE_CHARS = 1200
# One answer and one forced structured-output turn, no retry: prose is not worth more.
NARRATIVE_CALL_BUDGET = 2


class PatternNarrative(BaseModel):
    """Narrative of one attack pattern for the on-call engineer."""

    narrative: str = Field(
        description="Two or three plain sentences for an on-call engineer about this pattern.",
        min_length=1,
    )

    @field_validator("narrative")
    @classmethod
    def _clean(cls, value: str) -> str:
        return sanitize_text(value, NARRATIVE_CHARS)


class PatternNarrator:
    """Writes a pattern's narrative with ``model``, at most ``NARRATIVE_CALL_BUDGET`` requests."""

    def __init__(self, model: Any, *, model_id: str | None = None) -> None:
        self._model = model
        self._model_id = model_id

    def __call__(self, pattern: Pattern) -> str:
        return self.narrate(pattern).text

    def narrate(self, pattern: Pattern) -> Narration:
        from strands import Agent

        from agent_runtime.model_budget import BudgetedModel
        from agent_runtime.providers import model_id_of
        from agent_runtime.structured_output import offer_plainly

        written_by = self._model_id or model_id_of(self._model)
        model = BudgetedModel(self._model, NARRATIVE_CALL_BUDGET)
        # A fresh, tool-less agent per pattern: no memory between patterns, no actions.
        agent = Agent(
            model=model,
            system_prompt=PATTERN_SYSTEM_PROMPT,
            tools=[],
            callback_handler=None,
            retry_strategy=None,
            name="security_monitor",
        )
        offer_plainly(agent, PatternNarrative)
        try:
            result: Any = agent(build_pattern_prompt(pattern), structured_output_model=PatternNarrative)
        except Exception as exc:
            log.warning("narrative_failed", pattern_key=pattern.pattern_key, error=str(exc)[:200])
            return Narration("", written_by, model.calls)
        output = result.structured_output
        text = output.narrative if isinstance(output, PatternNarrative) else ""
        return Narration(text, written_by, model.calls)
