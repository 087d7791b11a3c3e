"""The options every command group shares: a bad value is one line and exit 2, caught
while the arguments are parsed, before anything reads a setting or reaches AWS."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from worker.cli.app import build_parser, main
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


# ---- malformed arguments: usage errors, never refusals --------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["incidents", "show", "nope"], "'nope' is not an incident id"),
        (["incidents", "ack", "inc#abc", "--json"], "'inc#abc' is not an incident id"),
        (["incidents", "resolve", "inc#abc#0"], "'inc#abc#0' is not an incident id"),
        (["incidents", "resolve", "nope", "--false-positive", "--reason", "r"], "is not an incident id"),
        (["suppress", "show", "nope"], "'nope' is not a suppression id"),
        (["suppress", "expire", "sup-XYZ", "--json"], "'sup-XYZ' is not a suppression id"),
        (["suppress", "remove", "sup-0123"], "'sup-0123' is not a suppression id"),
        (
            ["block", "add", "notanip", "--for", "1h", "--reason", "x"],
            "'notanip' is not an IP address or CIDR",
        ),
        # --json changes the result's form, not what a usage error is: one line on stderr
        (["block", "add", "notanip", "--for", "1h", "--reason", "x", "--json"], "is not an IP address"),
        (["block", "add", "203.0.113.300", "--for", "1h", "--reason", "x"], "is not an IP address or CIDR"),
        (["block", "add", "203.0.113.0/33", "--for", "1h", "--reason", "x"], "is not an IP address or CIDR"),
        (
            ["block", "add", "198.51.100.7/24", "--for", "1h", "--reason", "x", "--json"],
            "'198.51.100.7/24' has host bits set: the network is 198.51.100.0/24",
        ),
        (
            ["block", "add", "203.0.113.9", "--for", "1h", "--reason", "x", "--incident", "garbage"],
            "argument --incident: 'garbage' is not an incident id",
        ),
        (["block", "remove", "notanip"], "'notanip' is not an IP address or CIDR"),
        (["block", "remove", "notanip", "--json"], "'notanip' is not an IP address or CIDR"),
        (["dlq", "replay", "--event-key", "evt-a"], "'evt-a' is not an event key"),
        (["dlq", "replay", "--event-key", "evt#"], "'evt#' is not an event key"),
        (["dlq", "replay", "--event-key", "msg#sha256:abc"], "'msg#sha256:abc' is not an event key"),
    ],
)
def test_a_malformed_id_or_address_is_a_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN an argument cannot be what the option means (nothing could ever match it)
    line = _usage_error(argv, capsys)
    # THEN exit 2 while parsing, one line naming the command, the argument and its help
    prog = f"secops {argv[0]} {argv[1]}"
    assert line.startswith(f"{prog}: error: argument "), line
    assert message in line, line
    assert line.endswith(f"(see {prog} --help)"), line


@pytest.mark.parametrize(
    "argv",
    [
        ["incidents", "show", "inc#3f2a#1"],
        ["suppress", "remove", "sup-0123456789"],
        ["block", "add", "203.0.113.9", "--for", "1h", "--reason", "x", "--incident", "inc#3f2a#12"],
        ["block", "add", "2001:db8::/64", "--for", "1h", "--reason", "x"],
        ["block", "add", "::ffff:203.0.113.9", "--for", "1h", "--reason", "x"],
        # refused later (allowlisted, reserved), exit 1: well formed all the same
        ["block", "add", "10.0.0.7", "--for", "1h", "--reason", "x"],
        ["block", "add", "0.0.0.0/0", "--for", "1h", "--reason", "x"],
        ["block", "remove", "198.51.100.7/24"],
        ["dlq", "replay", "--event-key", "evt#evt-b", "--event-key", "msg#sha256:" + "0a" * 20],
    ],
)
def test_a_well_formed_id_or_address_parses(argv: list[str]) -> None:
    # A well-formed request the system may still refuse or not find is not a usage error.
    args = build_parser().parse_command(argv)
    assert args.handler is not None


# ---- an unknown option points to the help of the command it follows ----------------------


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every command a person can type to the end: ``secops monitor``, ``secops suppress list``."""
    chooser = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if chooser is None:
        yield parser
        return
    for child in dict.fromkeys(chooser.choices.values()):
        yield from _commands(child)


@pytest.mark.parametrize("prog", [p.prog for p in _commands(build_parser())])
def test_an_unknown_option_names_the_help_of_its_command(
    prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN any command is given an option it does not have
    line = _usage_error([*prog.split()[1:], "--bogus"], capsys)
    # THEN the line is that command's and points to its --help, not to `secops --help`
    # (a command whose arguments are missing says that first, in its own name too)
    assert line.startswith(f"{prog}: error: "), line
    assert line.endswith(f"(see {prog} --help)"), line
    assert "unrecognized arguments: --bogus" in line or " required" in line, line


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["suppress", "list", "--bogus"], "secops suppress list"),
        (["suppress", "--bogus", "list"], "secops suppress list"),
        (["suppress", "show", "sup-0123456789", "--bogus"], "secops suppress show"),
        (["block", "add", "203.0.113.9", "--for", "1h", "--reason", "x", "--bogus"], "secops block add"),
        (["block", "sync", "extra"], "secops block sync"),
        (["monitor", "--bogus", "--json"], "secops monitor"),
        # before the command's name: still the command typed
        (["--bogus", "monitor"], "secops monitor"),
    ],
)
def test_an_unknown_argument_is_reported_by_the_command_typed(
    argv: list[str], prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _usage_error(argv, capsys)
    unknown = next(a for a in argv if a in {"--bogus", "extra"})
    assert line == f"{prog}: error: unrecognized arguments: {unknown} (see {prog} --help)"
