"""``secops stats`` as a subprocess against moto's server: the counted windows, as an operator reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from secops_core.ingest.normalize import normalize_event
from secops_core.waf.operator import EMPTY
from secops_core.waf.relevance import relevance
from tests.fixtures.counted_records import reputation_blocked
from tests.fixtures.worker_harness import fast_settings
from tests.fixtures.worker_process import cli_env, run_cli
from worker.daemon import Clients
from worker.store.aggregates import WindowCounter
from worker.store.dynamodb import EventStore

pytestmark = pytest.mark.slow

# Attacker-written text that rich would read as console markup if it were not escaped.
MARKUP_URI = "/search/[bold red]owned[/]"


def test_stats_prints_the_counted_windows(aws_endpoint: str, unique: str, tmp_path: Path) -> None:
    # GIVEN a log object's read that counted 12 reputation blocks from 4 sources, saved
    # with its checkpoint as the worker does
    settings = fast_settings(unique, tmp_path)
    clients = Clients.from_settings(settings)
    store = EventStore(settings.table_name, client=clients.dynamodb)
    store.create_table()
    claimed = store.claim_object("logs", "AWSLogs/x.log.gz", "e1", owner="w", lease_s=30)
    counter = WindowCounter(f"{claimed.pk}@0")
    now = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(12):
        event = normalize_event(
            reputation_blocked(f"198.51.100.{i % 4}", MARKUP_URI if i % 2 else "/cart", now)
        )
        counter.add(event, relevance(event, EMPTY))
    store.save_object_counted(
        claimed.advanced(12, claimed.counts()), counter.take_dirty(), owner="w", lease_s=30
    )
    env = cli_env(aws_endpoint, settings, log_format="json", log_level="INFO", metrics_enabled="true")

    # WHEN the operator asks for JSON
    result = run_cli("stats", "--json", env=env)
    # THEN stdout is one JSON document with the totals, the rule and both windows
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["totals"] == {"requests": 12, "windows": 2}
    [rule] = view["by_rule"]
    assert rule["requests"] == 12 and rule["by_action"] == {"BLOCK": 12}
    assert rule["attack_class"] == "ip_reputation"
    assert sorted(w["uri_template"] for w in view["windows"]) == ["/cart", MARKUP_URI]
    assert all(w["requests"] == 6 and w["distinct_sources"] == 2 for w in view["windows"])

    # WHEN the operator asks for the table THEN attacker text is shown as text, not markup
    table = run_cli("stats", env=env)
    assert table.returncode == 0, table.stderr
    assert "12 requests in 2 windows" in table.stdout
    assert "[bold red]owned[/]" in table.stdout
