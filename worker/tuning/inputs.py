"""What the tuning report reads: the stored events, or the WAF log files themselves, and
(where a deployment keeps them) per-window rule counts (docs/architecture.md, "Tuning report").

The log files are read with the ingestion's own reader and filter
(:mod:`secops_core.ingest.s3_logs`), so the report counts exactly what the worker would
have received; the caller opens each object (the S3 client is an adapter's).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from secops_core.contract import WafEvent
from secops_core.errors import ContractError
from secops_core.ingest.normalize import normalize_event
from secops_core.ingest.s3_logs import KeepMode, LogObjectReader, open_log_stream
from worker.ports import EventHistory
from worker.tuning.report import RuleCount


class RuleCounts(Protocol):
    """Per-window counts of rule matches kept instead of events (noise aggregates).

    The seam for them: an implementation yields one :class:`RuleCount` per rule, action
    and window (with a URI template and host where it kept them); the report adds them
    to its matches, actions, paths and time series. Without the requests behind them they
    say nothing about sources, so they never move a rule's customer share.
    """

    def iter_rule_counts(self, *, since: datetime, until: datetime) -> Iterator[RuleCount]: ...


@dataclass
class ReadTally:
    """What an input read, for the report's header."""

    records: int = 0
    unreadable: int = 0


def stored_events(
    history: EventHistory, *, since: datetime, until: datetime, tally: ReadTally
) -> Iterator[WafEvent]:
    """The events the store holds with event time in [since, until]."""
    for record in history.iter_events(since=since, until=until):
        if record.event is not None:
            tally.records += 1
            yield record.event


def logged_events(
    keys: Iterable[str],
    open_body: Callable[[str], Any],
    *,
    keep: KeepMode,
    tally: ReadTally,
) -> Iterator[WafEvent]:
    """The records the ingestion would keep from each log object, normalized."""
    for key in keys:
        reader = LogObjectReader(open_log_stream(open_body(key)), keep=keep)
        for frame in reader:
            for kept in frame:
                tally.records += 1
                try:
                    yield normalize_event(json.loads(kept.body))
                except (ContractError, ValueError):
                    tally.unreadable += 1
        tally.unreadable += reader.counts.bad
