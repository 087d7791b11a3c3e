"""The analyst's input tokens on the day's representative calls (``python -m bench.tokens``)."""

from __future__ import annotations

import json

import pytest

from bench.tokens import sample_calls, summary

# The target of docs/architecture.md, "Model economy": input tokens per analyst call.
INPUT_TOKENS_PER_CALL_TARGET = 800


@pytest.mark.slow
def test_the_analyst_input_stays_under_the_target() -> None:
    # GIVEN one analyst call per kind and floor of the day's traffic
    calls = sample_calls()

    # WHEN their input is measured as the bench measures it
    figures = summary(calls)

    # THEN the mean stays under the target, every part counted
    assert figures["calls"] == 9
    assert figures["input_tokens_per_call"] <= INPUT_TOKENS_PER_CALL_TARGET
    assert figures["system_prompt_tokens"] > 0
    assert figures["tool_schema_tokens"] > 0
    assert figures["event_prompt_tokens"] > 0
    # AND no call offers the tool with Strands' structured-output preamble
    for request in calls:
        assert "StructuredOutputTool" not in json.dumps(request.tool_specs)
