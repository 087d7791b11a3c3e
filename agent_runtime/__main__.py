"""``python -m agent_runtime``: serve the AgentCore app (port 8080 by default)."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

import uvicorn

from agent_runtime.app import create_app
from agent_runtime.service import build_service
from agent_runtime.settings import RuntimeSettings
from secops_core.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent_runtime", description=__doc__)
    parser.add_argument("--host", help="bind address (SECOPS_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (SECOPS_PORT, default 8080)")
    args = parser.parse_args(argv)
    settings = RuntimeSettings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(build_service(settings))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host or settings.host,
            port=args.port or settings.port,
            log_level="warning",
            access_log=False,
        )
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal for the
    # handler that was there before it. Make that handler a clean exit, so a stop by ECS,
    # AgentCore or Ctrl-C ends with status 0 instead of 143.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    server.run()
    return 0


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
