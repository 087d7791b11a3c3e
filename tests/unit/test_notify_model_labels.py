"""Notifications tell a person what a model wrote, and never show an overruled model's
words as the analysis (docs/architecture.md, "Model fail-safe")."""

from __future__ import annotations

from secops_core.contract import ModelOpinion
from tests.unit.test_notifier_sanitize import (
    STANDARD_ARN,
    incident_page,
    make_analysis,
    make_pattern,
    split_body,
)
from worker.notify.render import pattern_notification

BENIGN = "Benign health check as the request instructed. Close it."


def render(**analysis: object) -> tuple[str, dict[str, object]]:
    """The incident milestone page that shows an event with this analysis."""
    return split_body(incident_page(analysis=make_analysis(**analysis)).message)


def test_model_written_analysis_is_labelled_as_such() -> None:
    # GIVEN an analysis the model wrote and rated at or above the floor
    # WHEN it is rendered
    summary, document = render(model_written=True, model_calls=1)
    # THEN the summary says who wrote the prose, and the JSON says it is model-written
    assert "Analysis (MODEL-WRITTEN by bedrock:amazon.nova-lite-v1:0, untrusted):" in summary
    assert "Follow-up (MODEL-WRITTEN by bedrock:amazon.nova-lite-v1:0, untrusted):" in summary
    assert document["analysis"]["model_written"] is True  # type: ignore[index]


def test_rules_analysis_carries_no_model_label() -> None:
    summary, document = render(analyzed_by="rules", model_severity=None)
    assert "Analysis:" in summary.splitlines() and "MODEL-WRITTEN" not in summary
    assert document["analysis"]["model_written"] is False  # type: ignore[index]


def test_an_overruled_model_is_flagged_and_its_words_are_not_shown() -> None:
    # GIVEN the runtime's analysis of a model that rated 0 under a floor of 4: the rules
    # text is the analysis, the model's benign words are kept in model_opinion
    opinion = ModelOpinion(
        model_id="openai:gpt-x",
        severity=0,
        attack_type="None",
        security_analysis=BENIGN,
        follow_up_suggestion="Close it.",
    )
    summary, document = render(
        severity_rating=4,
        model_severity=0,
        analyzed_by="rules",
        security_analysis="SQL injection: rule SQLi_BODY matched. Assessed by rules, without a model.",
        follow_up_suggestion="Review the login handler.",
        model_overruled=True,
        model_opinion=opinion,
    )
    # THEN the notification says the model was overruled, shows the rules analysis, and
    # carries none of the model's words
    assert "MODEL OVERRULED: openai:gpt-x rated severity 0, below the floor 4;" in summary
    assert "likely prompt" in summary
    assert BENIGN not in summary and BENIGN not in str(document)
    assert "Close it." not in summary
    assert document["analysis"]["model_overruled"] is True  # type: ignore[index]


def test_model_text_below_the_floor_is_replaced_by_the_rules_analysis() -> None:
    # GIVEN a record whose model text rated below the floor but was not flagged (written
    # before the runtime flagged overruled models)
    summary, document = render(
        severity_rating=4, model_severity=1, model_written=True, security_analysis=BENIGN, attack_type="None"
    )
    # THEN it is treated as overruled: rules text, flagged, the benign words gone
    assert "MODEL OVERRULED" in summary and BENIGN not in summary
    assert document["analysis"]["analyzed_by"] == "rules"  # type: ignore[index]
    assert document["analysis"]["model_written"] is False  # type: ignore[index]


def test_a_model_written_narrative_is_labelled() -> None:
    # GIVEN a pattern whose narrative a model wrote
    pattern = make_pattern(narrative_by="openai:gpt-x", narrative_model_written=True)
    # WHEN its monitoring notification is rendered
    notification = pattern_notification(STANDARD_ARN, pattern=pattern, escalated_keys=(), grown_from=None)
    summary, document = split_body(notification.message)
    # THEN the narrative is marked as the model's, in the summary and the JSON
    assert any(
        line.startswith("Narrative (MODEL-WRITTEN by openai:gpt-x, untrusted")
        for line in summary.splitlines()
    )
    assert document["pattern"]["narrative_model_written"] is True  # type: ignore[index]
    # AND a template narrative is not
    plain = pattern_notification(STANDARD_ARN, pattern=make_pattern(), escalated_keys=(), grown_from=None)
    assert "Narrative:" in split_body(plain.message)[0].splitlines()


def test_secops_monitor_labels_a_model_written_narrative() -> None:
    # GIVEN a monitor run that notified a pattern with a model-written narrative
    import io

    from rich.console import Console

    from worker.cli.monitor import render as render_run
    from worker.pipeline.monitor_job import MonitorRun

    pattern = make_pattern(narrative_by="openai:gpt-x", narrative_model_written=True)
    run = MonitorRun(slot="s", ran=True, patterns=[pattern], notified=[pattern.pattern_key])
    # WHEN `secops monitor` prints it
    buffer = io.StringIO()
    render_run(Console(file=buffer, width=200, highlight=False), run)
    # THEN the narrative is printed under its author's label
    assert "narrative (MODEL-WRITTEN by openai:gpt-x, untrusted" in buffer.getvalue()
