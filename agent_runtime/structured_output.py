"""The structured-output tool as the model is offered it: the answer's own description.

Strands offers a structured output model as a tool whose description is the model's
docstring behind a fixed preamble that tells the model to call it last, after any other
tool ("IMPORTANT: This StructuredOutputTool should only be invoked as the last and final
tool before returning the completed result to the caller. <description>…</description>"):
about 45 tokens on every model call. Our agents have no other tool and their system
prompts tell the model to answer by calling it, so the preamble says nothing; an input
middleware of the model call gives the tool back the docstring alone (docs/architecture.md,
"Model economy"). The schema, the tool choice of the forced turn and the validation stay
Strands' own.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from strands import Agent
from strands.middleware import InvokeModelContext, InvokeModelStage


def plain_description(output_model: type[BaseModel]) -> Callable[[InvokeModelContext], InvokeModelContext]:
    """An input middleware that describes ``output_model``'s tool by its docstring only."""
    name = output_model.__name__
    description = (output_model.__doc__ or "").strip() or f"{name} structured output tool"

    def offer(context: InvokeModelContext) -> InvokeModelContext:
        # The context's tool specs are Strands' per-call copies: the agent's own stay as they were.
        for spec in context.tool_specs:
            if spec["name"] == name:
                spec["description"] = description
        return context

    return offer


def offer_plainly(agent: Agent, output_model: type[BaseModel]) -> None:
    """Every model call of ``agent`` sees ``output_model``'s tool without Strands' preamble."""
    agent.add_middleware(InvokeModelStage.Input, plain_description(output_model))
