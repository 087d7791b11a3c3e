"""The options every command group shares: a bad value is one line and exit 2, caught
while the arguments are parsed, before anything reads a setting or reaches AWS."""

from __future__ import annotations

import pytest

from worker.cli.app import main
from worker.cli.common import EXIT_USAGE, duration, positive_float, positive_int


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == EXIT_USAGE
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("6h", 21600.0), ("2d", 172800.0)]
)
def test_a_duration_is_seconds_or_a_unit(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # nan and inf parse as floats; they used to reach a datetime and end in a traceback
        (["block", "add", "203.0.113.9", "--for", "nan", "--reason", "x"], "is not a duration"),
        (["block", "add", "203.0.113.9", "--for", "inf", "--reason", "x"], "is not a duration"),
        (["block", "add", "203.0.113.9", "--for", "1e400", "--reason", "x"], "is not a duration"),
        (["block", "add", "203.0.113.9", "--for", "1e12", "--reason", "x"], "is longer than 3650d"),
        (["block", "add", "203.0.113.9", "--for", "soon", "--reason", "x"], "is not a duration"),
        (["block", "list", "--removed", "nan"], "is not a duration"),
        (["incidents", "list", "--since", "inf"], "is not a duration"),
        (["incidents", "list", "--since", "99999d"], "is longer than 3650d"),
        (["incidents", "list", "--limit", "0"], "must be greater than 0"),
        (["suppress", "add", "--rule", "R", "--uri", "/x", "--reason", "r", "--expires", "inf"], "duration"),
        (["suppress", "add", "--rule", "R", "--uri", "/x", "--reason", "r", "--preview", "nan"], "duration"),
        (["dlq", "replay", "--rate", "inf"], "'inf' is not a number"),
        (["dlq", "replay", "--rate", "nan"], "'nan' is not a number"),
        (["dlq", "replay", "--rate", "0"], "must be greater than 0"),
        (["dlq", "replay", "--max-age", "nan"], "is not a duration"),
        (["dlq", "inspect", "--limit", "1.5"], "is not a whole number"),
        # a reason the audit trail keeps says something
        (["block", "add", "203.0.113.9", "--for", "1h", "--reason", ""], "argument --reason: say why"),
        (["block", "remove", "203.0.113.9", "--reason", "  "], "argument --reason: say why"),
        (["suppress", "add", "--rule", "R", "--uri", "/x", "--reason", " "], "argument --reason: say why"),
        (
            ["incidents", "resolve", "inc#a#1", "--false-positive", "--reason", ""],
            "argument --reason: say why",
        ),
    ],
)
def test_a_bad_value_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN a command is given a value its option cannot take
    line = _usage_error(argv, capsys)
    # THEN argparse names the command and the option, in one line
    assert line.startswith(f"secops {argv[0]} {argv[1]}: error: argument "), line
    assert message in line, line


def test_a_positive_number_is_finite() -> None:
    assert positive_float("2.5") == 2.5
    assert positive_int("3") == 3
