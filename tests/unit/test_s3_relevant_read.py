"""A ``relevant`` read hands out exactly what the catalog says of each record, fast path or
not (docs/architecture.md, "Relevance"): floor keys once graded stand for the records
that come back with them, whatever the request, the spacing or the place in the file."""

from __future__ import annotations

import gzip
import io
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

import secops_core.ingest.s3_logs as s3_logs
from secops_core.contract import WafEvent
from secops_core.ingest.log_filter import CountedRequest, RelevanceFilter
from secops_core.ingest.s3_logs import LogObjectReader, open_log_stream
from secops_core.waf.operator import EMPTY
from secops_core.waf.relevance import Relevance
from worker.ops.log_samples import gzip_ndjson, waf_log_records

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
GEO = ["US", "DE", "FR", "BR", "JP"]


def _mixed(count: int, seed: int = 3) -> list[dict[str, Any]]:
    """Attacks, rate-limited (counted) records and noise, with geo labels on a share of
    them, in an order that brings every floor key back many times."""
    rng = random.Random(seed)
    out = []
    for record in waf_log_records(count, matched_ratio=0.3, start=START, seed=seed):
        if rng.random() < 0.5:
            labels = record.setdefault("labels", [])
            labels.append({"name": f"awswaf:clientip:geo:country:{rng.choice(GEO)}"})
        out.append(record)
    return out


def _lines(records: list[dict[str, Any]], seed: int = 5) -> list[bytes]:
    """Each record compact, as WAF writes it, or spaced, as a re-serializer would."""
    rng = random.Random(seed)
    return [
        json.dumps(r, separators=(",", ":")).encode() if rng.random() < 0.8 else json.dumps(r).encode()
        for r in records
    ]


def _window(event: WafEvent | CountedRequest) -> CountedRequest:
    """What a window count reads of a counted record, whichever way it was graded."""
    if isinstance(event, CountedRequest):
        return event
    return CountedRequest(event.web_acl, event.action, event.uri, event.source_ip, event.timestamp)


def _expected(lines: list[bytes]) -> tuple[list[str], list[CountedRequest], int]:
    """What the catalog says, record by record, with no fast path: the events' bodies (each
    once), the counted records' window fields, and how many are noise."""
    grader = RelevanceFilter(EMPTY)
    kept: list[str] = []
    counted: list[CountedRequest] = []
    noise = 0
    for raw in lines:
        graded = grader.grade(json.loads(raw))
        assert graded is not None
        if graded.relevance is Relevance.EVENT:
            if raw.decode() not in kept:
                kept.append(raw.decode())
        elif graded.relevance is Relevance.COUNTED:
            counted.append(_window(graded.event))
        else:
            noise += 1
    return kept, counted, noise


def _read(data: bytes, **kwargs: Any) -> tuple[list[str], list[CountedRequest], LogObjectReader]:
    reader = LogObjectReader(
        open_log_stream(io.BytesIO(data)), keep="relevant", relevance=RelevanceFilter(EMPTY), **kwargs
    )
    kept: list[str] = []
    counted: list[CountedRequest] = []
    for frame in reader:
        for item in frame:
            if item.counted is None:
                kept.append(item.body)
            else:
                counted.append(_window(item.counted.event))
    return kept, counted, reader


def test_a_relevant_read_hands_out_what_the_catalog_says_of_each_record() -> None:
    # GIVEN a gzip file of attacks, counted records and noise, compact and spaced
    lines = _lines(_mixed(3000))
    expected_kept, expected_counted, noise = _expected(lines)
    # WHEN it is read
    kept, counted, reader = _read(gzip.compress(b"\n".join(lines) + b"\n"))
    # THEN each record got the catalog's verdict, in the file's order
    assert kept == expected_kept
    assert counted == expected_counted
    assert reader.counts.skipped == noise
    assert reader.counts.read == 3000 and reader.counts.bad == 0


def test_spaced_records_read_the_same_as_compact_ones() -> None:
    # GIVEN the same records written compact and spaced, in one plain file
    lines = _lines(_mixed(1500), seed=9)
    expected_kept, expected_counted, noise = _expected(lines)
    # WHEN it is read THEN each record gets the catalog's verdict, in the file's order
    kept, counted, reader = _read(b"\n".join(lines) + b"\n")
    assert kept == expected_kept
    assert counted == expected_counted
    assert reader.counts.skipped == noise


@pytest.mark.parametrize("stop_after", [1, 7, 40, 333])
def test_a_resumed_relevant_read_adds_up_to_the_whole(stop_after: int) -> None:
    # GIVEN a read stopped after some yields, and another resumed from its checkpoint
    data = gzip_ndjson(_mixed(2500, seed=11))
    whole_kept, whole_counted, whole = _read(data)
    reader = LogObjectReader(open_log_stream(io.BytesIO(data)), keep="relevant")
    kept: list[str] = []
    counted = 0
    for yields, frame in enumerate(reader, start=1):
        kept += [item.body for item in frame if item.counted is None]
        counted += sum(1 for item in frame if item.counted is not None)
        if yields >= stop_after:
            break
    rest_kept, rest_counted, resumed = _read(data, start_after=reader.done)
    # THEN together they read every record once (a fresh filter knows no key yet)
    assert kept + rest_kept == whole_kept
    assert counted + len(rest_counted) == len(whole_counted)
    assert reader.counts.read + resumed.counts.read == whole.counts.read == 2500


def test_ticks_fall_on_the_same_frames_with_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a small tick, and a file that is nearly all noise
    monkeypatch.setattr(s3_logs, "TICK_FRAMES", 50)
    data = gzip_ndjson(waf_log_records(2000, matched_ratio=0.01, start=START))
    reader = LogObjectReader(open_log_stream(io.BytesIO(data)), keep="relevant")
    gaps, last = [], 0
    for _frame in reader:
        gaps.append(reader.done - last)
        last = reader.done
    # THEN control comes back at least every TICK_FRAMES frames
    assert max(gaps) <= 50
    assert reader.done == 2000


def test_a_counted_key_with_a_malformed_request_takes_the_full_path() -> None:
    # GIVEN a rate-limited record, then one with the same rules but no valid source IP
    counted = next(r for r in waf_log_records(200, matched_ratio=0.5, start=START) if r["rateBasedRuleList"])
    broken = json.loads(json.dumps(counted))
    broken["httpRequest"]["clientIp"] = "not-an-address"
    lines = [json.dumps(r, separators=(",", ":")).encode() for r in (counted, counted, broken)]
    # WHEN they are read
    kept, counts, _ = _read(b"\n".join(lines) + b"\n")
    # THEN the two good ones are counted, the broken one is sent on (to be rejected there
    # with its reason), as a full parse would decide
    assert len(counts) == 2 and counts[0] == counts[1]
    assert kept == [lines[2].decode()]


def test_an_event_key_with_bytes_that_are_not_utf8_is_a_bad_line() -> None:
    # GIVEN an attack, then the same attack with a byte that is not UTF-8 in its request
    attack = next(r for r in waf_log_records(50, matched_ratio=0.5, start=START) if r["action"] == "BLOCK")
    first = json.dumps(attack, separators=(",", ":")).encode()
    second = first.replace(b'"uri":"', b'"uri":"\xff', 1)
    # WHEN they are read THEN the first is kept and the second is a bad line
    kept, _, reader = _read(first + b"\n" + second + b"\n")
    assert kept == [first.decode()]
    assert reader.counts.bad == 1 and reader.counts.bad_lines[0].line == 2
