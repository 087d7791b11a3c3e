"""The demo's response actions: IP sets in moto's WAFv2, the policy on, and the blocks it
decided shown in the set, then expired by the scheduler's pass with the clock moved past
their block period (README "Response actions")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from secops_core.text import sanitize_text
from worker.notify import blocks
from worker.platform import aws, clock
from worker.response.addresses import AddressRefused, block_target
from worker.response.blocker import Blocker
from worker.response.expiry import ExpiryJob
from worker.response.records import iso
from worker.response.wafv2 import ensure_ip_set
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.daemon import Worker

IP_SET = "secops-demo-blocked"
# "Your office": an incident from it is selected by the policy and never blocked.
ALLOWLISTED = "198.51.100.42/32"


def with_ip_sets(settings: Settings) -> Settings:
    """Create the demo's IP sets and turn the response on (the samples live in the
    documentation ranges, released here; a real deployment never needs that)."""
    client = aws.client("wafv2", region=settings.aws_region)
    v4, _ = ensure_ip_set(client, name=f"{IP_SET}-v4", scope="REGIONAL", version="IPV4")
    v6, _ = ensure_ip_set(client, name=f"{IP_SET}-v6", scope="REGIONAL", version="IPV6")
    return settings.model_copy(
        update={
            "response_mode": "on",
            "response_ip_set_v4": v4.arn,
            "response_ip_set_v6": v6.arn,
            "response_blockable_ranges": "documentation",
            "response_allowlist": ALLOWLISTED,
        }
    )


def without_finding_notes(worker: Worker) -> None:
    """moto's Security Hub has no BatchUpdateFindings: the demo leaves the block's Note
    on the incident's finding out (tests/functional/test_block_notices.py shows it)."""
    listener = worker.blocker.listener if worker.blocker is not None else None
    if isinstance(listener, blocks.BlockAnnouncer):
        listener.publishers.pop("securityhub", None)


def blocks_summary(worker: Worker, incidents: list[Any]) -> dict[str, Any]:
    """The blocks the run decided and what the IP set held; then the expiry pass, run as
    if the block period were over, and what the set holds after it."""
    blocker, responder = worker.blocker, worker.responder
    if blocker is None or responder is None:
        raise RuntimeError("the demo's settings configure an IP set and the response policy")
    ip_set = blocker.sets["IPV4"]
    decided = blocker.repo.blocks_in_force()
    before = sorted(blocker.ip_sets.addresses(ip_set))
    refused = []
    for incident in incidents:
        selection = responder.policy.select(incident)
        for address in selection.addresses if selection else ():
            try:
                block_target(address, prefix=blocker.prefix, allowlist=blocker.allowlist)
            except AddressRefused as exc:
                refused.append({"address": address, "incident": incident.id, "reason": exc.reason})
    later = max((b.expires_at for b in decided), default=clock.epoch()) + 1
    moved = Blocker(
        repo=blocker.repo,
        ip_sets=blocker.ip_sets,
        sets=blocker.sets,
        allowlist=blocker.allowlist,
        caps=blocker.caps,
        prefix=blocker.prefix,
        now=lambda: later,
        listener=blocker.listener,
    )
    run = ExpiryJob(
        blocker=moved,
        lock=worker.store,
        owner=worker.owner,
        interval_s=worker.settings.response_expiry_interval_s,
        now=lambda: datetime.fromtimestamp(later, UTC),
    ).tick()
    return {
        "ip_set": ip_set.label,
        "decided": [
            {
                "network": b.network,
                "incident": b.incident_id,
                "reason": b.reason,
                "until": iso(b.expires_at),
                "line": b.line,
                "undo": b.undo_command,
            }
            for b in decided
        ],
        "refused": refused,
        "in_ip_set": before,
        "expired_at": iso(later),
        "expired": run.removed,
        "in_ip_set_after_expiry": sorted(blocker.ip_sets.addresses(ip_set)),
    }


def split_block_notices(summary: dict[str, Any]) -> None:
    """Move what the channels received about blocks out of the incident outputs into
    ``summary["blocks"]["notices"]``, so each table reads one story."""
    subjects = ("SecOps blocked ", "SecOps unblocked ")
    detail_types = set(blocks.DETAIL_TYPES.values())
    notices: dict[str, list[Any]] = {"sns": [], "eventbridge": [], "chat": []}
    critical = summary["notifications"]["critical"]
    notices["sns"] = [s for s in critical if s.startswith(subjects)]
    summary["notifications"]["critical"] = [s for s in critical if not s.startswith(subjects)]
    events = summary["eventbridge_events"]
    notices["eventbridge"] = [e for e in events if e["detail_type"] in detail_types]
    summary["eventbridge_events"] = [e for e in events if e["detail_type"] not in detail_types]
    cards = summary["chat_cards"]
    notices["chat"] = [c for c in cards if c["title"].startswith(blocks.CHAT_HEADLINES)]
    summary["chat_cards"] = [c for c in cards if not c["title"].startswith(blocks.CHAT_HEADLINES)]
    summary["blocks"]["notices"] = notices


def print_blocks(console: Console, summary: dict[str, Any]) -> None:
    table = Table(
        title=f"Response actions: sources blocked in {summary['ip_set']} (moto's WAFv2)", title_justify="left"
    )
    for column in ("network", "incident", "until", "reason", "undo"):
        table.add_column(column)
    for block in summary["decided"]:
        table.add_row(
            Text(block["network"]),
            Text(block["incident"] or "-"),
            Text(block["until"]),
            Text(sanitize_text(block["reason"], 50)),
            Text(block["undo"]),
        )
    console.print(table)
    for refusal in summary["refused"]:
        console.print(Text(f"not blocked {refusal['address']} ({refusal['incident']}): {refusal['reason']}"))
    counts = {name: len(items) for name, items in summary.get("notices", {}).items()}
    console.print(
        Text(
            f"Announced: {counts.get('sns', 0)} SNS notices, {counts.get('chat', 0)} chat cards, "
            f"{counts.get('eventbridge', 0)} EventBridge events (Source Blocked / Source Unblocked)."
        )
    )
    console.print(
        Text(
            f"IP set held {len(summary['in_ip_set'])} addresses; the expiry pass at {summary['expired_at']} "
            f"(clock moved past the block period) removed {len(summary['expired'])}, "
            f"leaving {len(summary['in_ip_set_after_expiry'])}."
        )
    )
