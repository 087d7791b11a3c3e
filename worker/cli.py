"""``secops``: the operator's command line.

Every failure an operator can cause (a bad argument, a missing file, a bad setting,
an unreachable endpoint) ends in one line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from pydantic import ValidationError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A one-line failure shown as ``secops: error: <message>``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line says it better.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``6h``, ``2d`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    body, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(body)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m, 6h or 2d") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value * units[unit]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="secops", description="AI-assisted triage of AWS WAF events.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sub.add_parser("run", help="run the worker daemon (consumer + monitor scheduler)")
    sub.add_parser("setup", help="create the queue, DLQ, topics, table and index (idempotent)")

    send = sub.add_parser("send", help="enqueue events from a JSON lines file (- for stdin)")
    send.add_argument("file", help="JSON lines (or a JSON array) of events; - for stdin")
    send.add_argument("--raw", action="store_true", help="send lines verbatim, even if not JSON")

    sub.add_parser("health", help="exit 0 if the consumer's heartbeat is fresh, else 1")

    demo = sub.add_parser("demo", help="the embedded default: moto in-process, rules provider, samples")
    demo.add_argument("--events", help="a JSON lines file to use instead of the bundled samples")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")

    analyze = sub.add_parser("analyze", help="analyze events in-process and print one JSON result per line")
    analyze.add_argument("file", help="JSON lines (or a JSON array) of events; - for stdin")

    monitor = sub.add_parser("monitor", help="run one monitor pass now and print the patterns")
    monitor.add_argument(
        "--hours", type=_positive_int, help="look-back window (default SECOPS_MONITOR_HOURS)"
    )
    monitor.add_argument("--force", action="store_true", help="run even if this slot already ran")
    monitor.add_argument("--json", action="store_true", help="print JSON instead of a table")

    dlq = sub.add_parser("dlq", help="inspect or replay the dead-letter queue")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", parser_class=_Parser)
    dlq_sub.required = True
    inspect = dlq_sub.add_parser("inspect", help="show what is in the DLQ without consuming it")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.add_argument(
        "--limit", type=_positive_int, default=1000, help="messages to look at (default 1000)"
    )
    replay = dlq_sub.add_parser("replay", help="move messages from the DLQ back to the source queue")
    replay.add_argument("--limit", type=_positive_int, help="at most this many messages")
    replay.add_argument(
        "--max-age", type=_duration, help="only messages younger than this (90s, 15m, 6h, 2d)"
    )
    replay.add_argument(
        "--reason", action="append", help="only messages whose recorded rejection reason is this"
    )
    replay.add_argument("--event-key", action="append", help="only messages of this event key")
    replay.add_argument("--dry-run", action="store_true", help="show what would move, move nothing")
    replay.add_argument("--rate", type=_positive_float, default=50.0, help="messages per second (default 50)")
    replay.add_argument("--native", action="store_true", help="use SQS StartMessageMoveTask (whole DLQ)")
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


# ---- commands -----------------------------------------------------------------------


def _settings(**overrides: Any) -> Any:
    from worker.settings import Settings

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


def _env_name(loc: str) -> str:
    """``wait_time_s`` -> ``SECOPS_WAIT_TIME_S``; an alias pydantic reports (``LOG_LEVEL``) stays."""
    return loc if loc.isupper() else f"SECOPS_{loc.upper()}"


# Variables that set the log level explicitly (the settings default cannot tell).
_LOG_LEVEL_VARIABLES = ("SECOPS_LOG_LEVEL", "LOG_LEVEL")


def _logging(settings: Any, *, one_shot_level: str | None = None) -> None:
    """Configure logs; a one-shot command is quieter unless a level was asked for.

    The daemon logs at INFO for CloudWatch. A command an operator types already prints
    its result, so INFO lines on stderr would only bury the one line that matters
    (``secops analyze`` would log every event twice).
    """
    from secops_core.logs import configure_logging

    explicit = any(os.environ.get(name) for name in _LOG_LEVEL_VARIABLES)
    level = settings.log_level if explicit or one_shot_level is None else one_shot_level
    configure_logging(level, settings.log_format)


def cmd_run(args: argparse.Namespace) -> int:
    from worker.daemon import build_worker, run_worker

    settings = _settings()
    _logging(settings)
    worker = build_worker(settings)
    code = run_worker(worker)
    if worker.consumer.abandoned:
        _exit_now(code)
    return code


def _exit_now(code: int) -> NoReturn:
    """Exit without finalizing the interpreter around work threads the drain gave up on.

    Their messages are visible again and their leases given back. Finalizing while
    they still run would let them write to half-closed streams (Python aborts when a
    daemon thread holds stderr's lock at shutdown) or block on library atexit hooks,
    and ECS would SIGKILL a task that overstays its stop timeout anyway.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing left to say
            stream.flush()
    os._exit(code)


def cmd_setup(args: argparse.Namespace) -> int:
    from worker.daemon import Clients
    from worker.resources import setup_resources
    from worker.store import EventStore

    settings = _settings()
    _logging(settings, one_shot_level="WARNING")
    clients = Clients.from_settings(settings)
    store = EventStore(settings.table_name, client=clients.dynamodb, ttl_days=settings.event_ttl_days)
    resources, report = setup_resources(settings, sqs=clients.sqs, sns=clients.sns, store=store)
    _out(json.dumps({"resources": resources.__dict__, "report": report}, indent=2))
    return EXIT_OK


def cmd_send(args: argparse.Namespace) -> int:
    from worker.daemon import Clients
    from worker.inputs import open_input
    from worker.resources import resolve_resources
    from worker.sending import send_records

    settings = _settings()
    _logging(settings, one_shot_level="WARNING")
    # A missing file is found before any AWS call (and its retries) is made.
    with open_input(args.file) as stream:
        clients = Clients.from_settings(settings)
        resources = resolve_resources(settings, sqs=clients.sqs, sns=clients.sns)
        result = send_records(clients.sqs, resources.queue_url, stream, raw=args.raw)
    _out(json.dumps(result))
    return EXIT_OK if not (result["skipped"] or result["failed"]) else EXIT_FAILED


def cmd_health(args: argparse.Namespace) -> int:
    from worker.health import check_health

    settings = _settings()
    status = check_health(settings.health_file, max_age_s=settings.health_max_age_s)
    (sys.stdout if status.healthy else sys.stderr).write(status.message + "\n")
    return EXIT_OK if status.healthy else EXIT_FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    return run_demo(events_file=args.events, as_json=args.json)


def cmd_analyze(args: argparse.Namespace) -> int:
    from worker.inputs import open_input

    settings = _settings()
    # Each input's failure is its own error object on stdout; a warning would repeat it.
    _logging(settings, one_shot_level="ERROR")
    # A missing file is found before the runtime and its provider SDK are imported.
    with open_input(args.file) as stream:
        from worker.agents.inprocess import InProcessTransport
        from worker.analyze import analyze_stream

        failures = analyze_stream(InProcessTransport.from_settings(settings), stream, sys.stdout)
    return EXIT_OK if failures == 0 else EXIT_FAILED


def cmd_monitor(args: argparse.Namespace) -> int:
    from worker.monitor_cli import run_monitor_command

    settings = _settings()
    _logging(settings)
    return run_monitor_command(settings, hours=args.hours, force=args.force, as_json=args.json)


def cmd_dlq(args: argparse.Namespace) -> int:
    from worker.dlq_cli import run_dlq_command

    settings = _settings()
    _logging(settings)
    return run_dlq_command(settings, args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "setup": cmd_setup,
    "send": cmd_send,
    "health": cmd_health,
    "demo": cmd_demo,
    "analyze": cmd_analyze,
    "monitor": cmd_monitor,
    "dlq": cmd_dlq,
}


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _explain(exc: BaseException) -> str | None:
    """A one-line explanation for failures an operator can fix; None for bugs."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    from worker.errors import WorkerError
    from worker.inputs import InputError
    from worker.resources import ResourceError

    if isinstance(exc, CliError | InputError | ResourceError):
        return str(exc)
    if isinstance(exc, WorkerError):
        return exc.message
    if isinstance(exc, EndpointConnectionError):
        return (
            f"cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')}: check AWS_ENDPOINT_URL "
            "(or LOCALSTACK_HOST when SECOPS_LOCALSTACK=1)"
        )
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    if isinstance(exc, NoRegionError):
        return "no AWS region configured (set AWS_REGION)"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"AWS error {error.get('Code', 'Unknown')}: {error.get('Message', str(exc))}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        sys.stderr.write("secops: interrupted\n")
        return 130
    except BrokenPipeError:
        # `secops analyze ... | head`: the reader left; that is not an error of ours.
        return EXIT_OK
    except Exception as exc:
        message = _explain(exc)
        if message is None:
            raise
        sys.stderr.write(f"secops: error: {message}\n")
        return getattr(exc, "code", EXIT_FAILED) if isinstance(exc, CliError) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
