"""What every command shares: exit codes, the one-line error, settings, logging, output.

The rule for stdout: a command's result (JSON or a table) is the only thing written
there; logs go to stderr and a one-shot command emits no metrics (see
:func:`one_shot_settings`), so ``secops monitor --json | jq`` always parses.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError

from worker.settings import Settings

# The one rule for exit codes (README, "The command line"; `secops --help` says it too).
EXIT_OK = 0
# A well-formed request that the system refused or that found nothing (an allowlisted
# address, an unknown id, drift not repaired), or that failed on the way (AWS).
EXIT_FAILED = 1
# What the invocation or the environment must fix before it can mean anything: a
# malformed argument (an id that is not one, something that is not an address), an
# unknown option, a bad setting, missing credentials or a missing extra. When the
# argument alone shows it, it is caught while parsing, before any request is made.
EXIT_USAGE = 2


class CliError(Exception):
    """A one-line failure shown as ``secops: error: <message>``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# Where a parsed namespace keeps the parser of the command typed (see Parser.parse_command).
_CHOSEN_PARSER = "_chosen_parser"


class Parser(argparse.ArgumentParser):
    """A usage error is one line that names the help of the command typed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A subcommand's defaults override its parent's, so once parsed this is the
        # deepest parser chosen (`secops suppress list`, not `secops`).
        self.set_defaults(**{_CHOSEN_PARSER: self})

    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line says it better.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_command(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        """``parse_args``, except that an argument nobody knows is reported by the command
        it follows: argparse hands it up to the top parser, whose help does not list the
        command's options (``secops suppress list --bogus`` is about ``secops suppress list``).
        """
        args, unknown = self.parse_known_args(argv)
        chosen: Parser = vars(args).pop(_CHOSEN_PARSER, self)
        if unknown:
            chosen.error(f"unrecognized arguments: {' '.join(unknown)}")
        return args


# The object ``add_subparsers`` returns; argparse keeps its class private.
Subparsers = Any


def command_group(
    sub: Subparsers, name: str, *, help: str, handler: Callable[[argparse.Namespace], int] | None = None
) -> Subparsers:
    """``secops NAME ACTION ...``: the group's parser, whose ACTION is required.

    The action chosen is ``args.<name>_command``; ``handler`` serves every action that
    sets none of its own.
    """
    group = sub.add_parser(name, help=help)
    if handler is not None:
        group.set_defaults(handler=handler)
    actions = group.add_subparsers(dest=f"{name}_command", metavar="ACTION", parser_class=Parser)
    actions.required = True
    return actions


def json_option(parser: argparse.ArgumentParser, help: str = "print JSON only") -> None:
    """``--json``: the result as JSON, and nothing else, on stdout."""
    parser.add_argument("--json", action="store_true", help=help)


def by_option(parser: argparse.ArgumentParser) -> None:
    """``--by``: who acts, for the audit trail (:func:`actor` reads it)."""
    parser.add_argument("--by", default=None, help="who (default: the login name)")


def actor(args: argparse.Namespace) -> str:
    """Who the audit trail names: ``--by``, else the login name."""
    return str(args.by or login())


def audit_reason(text: str) -> str:
    """A ``--reason`` for the audit trail: words, not an empty string."""
    if not text.strip():
        raise argparse.ArgumentTypeError("say why in words: the audit trail keeps it")
    return text


_Number = TypeVar("_Number", int, float)


def _positive(text: str, convert: Callable[[str], _Number], kind: str) -> _Number:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def incident_id(text: str) -> str:
    """An incident id as typed (``inc#<hash>#<n>``); a malformed one is a usage error."""
    from worker.incidents.keys import parse_incident_id

    try:
        parse_incident_id(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an incident id (inc#<hash>#<n>, as `secops incidents list` shows)"
        ) from None
    return text


def positive_int(text: str) -> int:
    return _positive(text, int, "a whole number")


def positive_float(text: str) -> float:
    return _positive(text, float, "a number")


# The longest duration a command takes. Ten years is past any block, suppression or
# look-back an operator means, and keeps every date computed from one representable.
MAX_DURATION_DAYS = 3650


def duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``6h``, ``2d`` -> seconds (finite, at most ten years)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    body, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(body) * units[unit]
    except ValueError:
        value = math.nan  # not a number: the same message as for nan or inf
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m, 6h or 2d")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    if value > MAX_DURATION_DAYS * 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than {MAX_DURATION_DAYS}d")
    return value


def settings(**overrides: Any) -> Settings:
    """The process's settings; a bad value is one line naming its variable (exit 2)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = ".".join(str(p) for p in error.get("loc", ()))
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            # A cross-field check names its variables itself; a field error gets its name.
            problems.append(f"{_env_name(loc)}: {message}" if loc else message)
        raise CliError("invalid settings: " + "; ".join(problems), EXIT_USAGE) from None


def one_shot_settings() -> Settings:
    """Settings for a command that prints a result: metrics off.

    EMF metrics are written to stdout for CloudWatch; from a command an operator types
    they would only be lines in front of the result (and break ``--json``).
    """
    return settings(metrics_enabled=False)


def _env_name(loc: str) -> str:
    """``wait_time_s`` -> ``SECOPS_WAIT_TIME_S``; an alias pydantic reports (``LOG_LEVEL``) stays."""
    return loc if loc.isupper() else f"SECOPS_{loc.upper()}"


# Variables that set the log level explicitly (the settings default cannot tell).
_LOG_LEVEL_VARIABLES = ("SECOPS_LOG_LEVEL", "LOG_LEVEL")


def configure_logs(settings: Settings, *, one_shot_level: str | None = None) -> None:
    """Configure logs (always on stderr); a one-shot command is quieter unless a level was asked for.

    The daemon logs at INFO for CloudWatch. A command an operator types already prints
    its result, so INFO lines on stderr would only bury the one line that matters
    (``secops analyze`` would log every event twice).
    """
    from secops_core.logs import configure_logging

    explicit = any(os.environ.get(name) for name in _LOG_LEVEL_VARIABLES)
    level = settings.log_level if explicit or one_shot_level is None else one_shot_level
    configure_logging(level, settings.log_format)


def out(text: str) -> None:
    """One result line on stdout."""
    sys.stdout.write(text + "\n")


def out_json(result: Any, *, indent: int | None = 2, default: Callable[[Any], Any] | None = None) -> None:
    """The result as JSON on stdout (``--json``)."""
    out(json.dumps(result, indent=indent, default=default))


def print_text(text: str) -> None:
    """Text for a person on the console, as it is: never read as rich markup."""
    from rich.text import Text

    console().print(Text(text))


def command_settings() -> Settings:
    """The settings of a one-shot command, its logs quiet unless a level was asked for."""
    settings = one_shot_settings()
    configure_logs(settings, one_shot_level="WARNING")
    return settings


def dynamodb_client(settings: Settings) -> Any:
    from worker.platform import aws

    return aws.client(
        "dynamodb", session=aws.aws_session(settings.aws_region), localstack=settings.localstack
    )


def login() -> str:
    """Who typed the command, for the audit trails."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container with an unnamed uid)
        return "secops-cli"


def console() -> Any:
    """A rich console for tables; off a terminal (a pipe, a CI log) rich assumes 80 columns."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)
