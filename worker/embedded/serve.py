"""``secops demo --serve``: the demo's backend kept up, for exploring it from a second shell.

After the demo, the embedded moto server and everything the run left in it (events,
incidents, the DLQ, the log bucket, the findings) stay up until Ctrl-C. The demo prints
what a second shell needs to point every ``secops`` command at it: first clear every
``AWS_*`` and ``SECOPS_*`` variable that shell holds (an ``AWS_ENDPOINT_URL_SQS`` there
would win over ``AWS_ENDPOINT_URL``), then export the embedded endpoint, its dummy
credentials and the demo's resource names.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from rich.console import Console

from worker.embedded.logfile import DEMO_BUCKET
from worker.embedded.moto import embedded_environment

if TYPE_CHECKING:
    from worker.settings import Settings

# Clears every AWS_* and SECOPS_* variable of a POSIX shell (bash, zsh, sh).
CLEAR = "for v in $(env | grep -oE '^(AWS|SECOPS)_[A-Za-z0-9_]+'); do unset \"$v\"; done"


def exports(endpoint: str, settings: Settings) -> dict[str, Any]:
    """What a second shell runs to reach the served backend, and what to try there."""
    environment = {
        name: value
        for name, value in embedded_environment(endpoint).items()
        # The second shell's config files are left alone: the variables below beat them.
        if name not in {"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED"}
    }
    environment.update(
        SECOPS_PROVIDER=settings.provider,
        SECOPS_TRANSPORT=settings.transport,
        SECOPS_CHANNELS=settings.channels,
        SECOPS_QUEUE_NAME=settings.queue_name,
        SECOPS_DLQ_NAME=settings.dlq_name,
        SECOPS_TABLE_NAME=settings.table_name,
        SECOPS_CRITICAL_TOPIC_NAME=settings.critical_topic_name,
        SECOPS_MONITORING_TOPIC_NAME=settings.monitoring_topic_name,
        SECOPS_CHAT_TOPIC_NAME=settings.chat_topic_name,
        SECOPS_EVENTBRIDGE_BUS=settings.eventbridge_bus,
    )
    # The demo's IP sets, so `secops block list|add|remove|sync` reach them too.
    response = {
        "SECOPS_RESPONSE_IP_SET_V4": settings.response_ip_set_v4,
        "SECOPS_RESPONSE_IP_SET_V6": settings.response_ip_set_v6,
        "SECOPS_RESPONSE_BLOCKABLE_RANGES": settings.response_blockable_ranges,
        "SECOPS_RESPONSE_ALLOWLIST": settings.response_allowlist,
    }
    environment.update({name: value for name, value in response.items() if value})
    return {
        "endpoint": endpoint,
        "clear": CLEAR,
        "export": environment,
        "try": [
            "secops incidents list",
            "secops incidents show <ID from the list>",
            "secops block list",
            "secops suppress list",
            "secops stats",
            "secops dlq inspect",
            "secops monitor --force",
            f"secops backfill s3://{DEMO_BUCKET}/AWSLogs/ --dry-run",
            "secops rules explain <a WAF log record as JSON, or - for stdin>",
        ],
    }


def shell_lines(served: dict[str, Any]) -> list[str]:
    """The lines to paste into a second shell."""
    exported = " ".join(f"{name}={value}" for name, value in served["export"].items())
    return [served["clear"], f"export {exported}"]


def print_exports(console: Console, served: dict[str, Any]) -> None:
    console.print()
    console.print(
        f"[bold]The embedded backend stays up at {served['endpoint']}[/] (Ctrl-C here to stop it). "
        "In a second shell:"
    )
    for line in shell_lines(served):
        # Plain print: these lines are copied, so no wrapping or markup.
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    console.print("then try: " + " | ".join(served["try"]), markup=False)


def wait_for_stop(endpoint: str) -> None:
    """Block until SIGINT or SIGTERM; the caller then stops the backend."""
    stop = threading.Event()

    def handle(_signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    sys.stderr.write(f"secops demo: serving {endpoint} until Ctrl-C\n")
    sys.stderr.flush()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.stderr.write("secops demo: stopped\n")
