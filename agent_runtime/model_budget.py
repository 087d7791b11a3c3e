"""Counting and bounding model requests: one Strands model call is one HTTP request.

The providers make exactly one attempt per call (``providers.py``), so wrapping the
model counts every request a workflow makes, structured-output turns and the analyst's
own retries included, and refuses the one past the budget before it is sent.
Imported lazily: it loads Strands.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator
from typing import Any, TypeVar

from pydantic import BaseModel
from strands.models import Model
from strands.types.content import Messages
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolChoice, ToolSpec

T = TypeVar("T", bound=BaseModel)


class ModelBudgetSpentError(Exception):
    """The request's model budget is spent; the call was not made."""


class BudgetedModel(Model):
    """Delegates to ``inner``; counts each call and refuses calls beyond ``budget``."""

    def __init__(self, inner: Model, budget: int) -> None:
        self._inner = inner
        self._budget = budget
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    @property
    def remaining(self) -> int:
        with self._lock:
            return self._budget - self._calls

    def _take(self) -> None:
        with self._lock:
            if self._calls >= self._budget:
                raise ModelBudgetSpentError(f"model budget of {self._budget} request(s) spent")
            self._calls += 1

    def update_config(self, **model_config: Any) -> None:
        self._inner.update_config(**model_config)

    def get_config(self) -> Any:
        return self._inner.get_config()

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: ToolChoice | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[StreamEvent, None]:
        self._take()
        async for event in self._inner.stream(
            messages, tool_specs, system_prompt, tool_choice=tool_choice, **kwargs
        ):
            yield event

    async def structured_output(
        self,
        output_model: type[T],
        prompt: Messages,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        self._take()
        async for event in self._inner.structured_output(output_model, prompt, system_prompt, **kwargs):
            yield event
