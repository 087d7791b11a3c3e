"""``secops block add|sync --json`` over the blocker in memory: the top-level fields say
what the command did and never contradict the block; ``repaired`` means the sets were
written; the exit status follows the outcome."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tenacity import wait_none

from secops_core.logs import configure_logging
from tests.fixtures.fakes import FakeClock
from worker.cli import block as block_cli
from worker.cli.app import main
from worker.cli.common import EXIT_FAILED, EXIT_OK
from worker.response.addresses import Allowlist
from worker.response.blocker import Blocker
from worker.response.memory import MemoryBlockRepo, MemoryIpSets
from worker.response.records import BlockCaps, IpSetRef

V4 = IpSetRef(name="blocked-v4", id="v4", scope="REGIONAL", version="IPV4")


class Deployment:
    """One table and one IP set, as every `secops block` process of a test sees them."""

    def __init__(self) -> None:
        self.clock = FakeClock(1_796_000_000.0)
        self.repo = MemoryBlockRepo(clock=self.clock)
        self.ip_sets = MemoryIpSets(wait=wait_none())
        self.ip_sets.create(V4)

    def blocker(self, *, dry_run: bool = False) -> Blocker:
        return Blocker(
            repo=self.repo,
            ip_sets=self.ip_sets,
            sets={"IPV4": V4},
            allowlist=Allowlist.build(release=["documentation"]),
            caps=BlockCaps(per_hour=10, total=10),
            dry_run=dry_run,
            now=self.clock,
        )


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Deployment:
    deployment = Deployment()
    # The command's settings, but for the logs (on stderr, as a command configures them)
    # and the blocker, which is the one in memory.
    configure_logging("WARNING")
    monkeypatch.setattr(block_cli, "command_settings", lambda: None)
    monkeypatch.setattr(
        block_cli,
        "blocker_from_settings",
        lambda _settings, dry_run=False: deployment.blocker(dry_run=dry_run),
    )
    return deployment


def secops(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_a_block_reports_its_outcome_on_top_and_its_reason_in_the_block(
    deployed: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN a person blocks an address, then blocks it again for another reason
    code, added = secops(
        capsys, "block", "add", "203.0.113.9", "--for", "4h", "--reason", "stuffing", "--json"
    )
    again_code, again = secops(
        capsys, "block", "add", "203.0.113.9", "--for", "1h", "--reason", "x", "--json"
    )
    # THEN the outcome needs no reason; the block's reason is the one it was blocked for
    assert code == again_code == EXIT_OK
    assert (added["outcome"], added["outcome_reason"]) == ("blocked", None)
    assert added["block"]["reason"] == "stuffing" and added["network"] == added["block"]["network"]
    assert (again["outcome"], again["outcome_reason"]) == ("already", None)
    assert again["block"]["reason"] == "stuffing"
    assert "reason" not in added and "reason" not in again


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_refusal_names_its_reason_on_top_and_has_no_block(
    deployed: Deployment, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    # WHEN a person tries to block a private address
    argv = ["block", "add", "10.0.0.7", "--for", "1h", "--reason", "x", "--json"]
    code, refused = secops(capsys, *argv, *(["--dry-run"] if dry_run else []))
    # THEN the JSON says why, and exit 1
    assert code == EXIT_FAILED
    assert (refused["outcome"], refused["outcome_reason"], refused["block"]) == (
        "refused",
        "allowlisted",
        None,
    )


def test_a_dry_run_shows_the_block_it_would_write(
    deployed: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["block", "add", "203.0.113.9", "--for", "1h", "--reason", "probe", "--dry-run", "--json"]
    code, shown = secops(capsys, *argv)
    assert code == EXIT_OK
    assert (shown["outcome"], shown["outcome_reason"], shown["block"]["reason"]) == ("dry_run", None, "probe")
    assert deployed.ip_sets.addresses(V4) == frozenset()


def test_repaired_means_the_sets_were_written(
    deployed: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a block in force, and the sets matching the records
    secops(capsys, "block", "add", "203.0.113.9", "--for", "4h", "--reason", "r", "--json")
    # WHEN sync finds nothing to do
    code, clean = secops(capsys, "block", "sync", "--json")
    # THEN nothing was repaired
    assert code == EXIT_OK
    assert (clean["drift"], clean["repaired"]) == (False, False)

    # WHEN someone takes the address out of the set by hand
    deployed.ip_sets.remove(V4, ["203.0.113.9/32"])
    check_code, check = secops(capsys, "block", "sync", "--check", "--json")
    sync_code, synced = secops(capsys, "block", "sync", "--json")
    after_code, after = secops(capsys, "block", "sync", "--json")
    # THEN --check finds the drift and leaves it (exit 1); sync writes it back (exit 0); then none
    assert check_code == EXIT_FAILED
    assert (check["drift"], check["repaired"], check["missing"]) == (
        True,
        False,
        ["203.0.113.9/32 (blocked-v4)"],
    )
    assert sync_code == EXIT_OK
    assert (synced["drift"], synced["repaired"]) == (True, True)
    assert deployed.ip_sets.addresses(V4) == frozenset({"203.0.113.9/32"})
    assert after_code == EXIT_OK
    assert (after["drift"], after["repaired"]) == (False, False)


def test_a_dry_run_blocker_repairs_nothing(deployed: Deployment) -> None:
    # GIVEN a block missing from its set
    deployed.blocker().block("203.0.113.9", duration_s=3600, reason="r", decided_by="person:ana")
    deployed.ip_sets.remove(V4, ["203.0.113.9/32"])
    # WHEN a dry-run blocker syncs, asked to repair
    report = deployed.blocker(dry_run=True).sync(repair=True)
    # THEN the drift is reported as remaining, and the set is untouched
    assert (report.drift, report.repaired) == (True, False)
    assert deployed.ip_sets.addresses(V4) == frozenset()
