"""structlog set-up shared by both processes: JSON in containers, readable on a TTY."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Route structlog and stdlib logging to stderr, one line per event.

    ``fmt`` is ``json``, ``console`` or ``auto`` (console on a TTY, JSON otherwise, so
    CloudWatch Logs on ECS/AgentCore gets one JSON object a line).
    """
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        # Plain tracebacks: the rich default prints every frame's locals, and one local
        # holding a hostile payload can run to a million lines.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if use_json else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Libraries that are chatty at INFO; their warnings still come through.
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "strands", "httpx", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    # bedrock_agentcore attaches its own handler; route it through ours instead.
    agentcore = logging.getLogger("bedrock_agentcore")
    agentcore.handlers[:] = []
    agentcore.propagate = True


def _identity(_: Any, __: str, event_dict: Any) -> Any:
    return event_dict
