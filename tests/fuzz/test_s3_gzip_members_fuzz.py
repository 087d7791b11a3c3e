"""The gzip reader over any split of the same records into members (Firehose, CloudWatch Logs).

A member boundary may fall anywhere: between records, inside a record, inside a multi-byte
character, and a member may be empty. Whatever the split, the reader must hand out exactly
what it hands out for the one-member file, and end.
"""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secops_core.ingest.s3_logs import LogObjectReader, open_log_stream
from tests.fuzz.strategies import fuzz_settings
from worker.ops.log_samples import ndjson, waf_log_records

RECORDS = 800  # about 0.9 MB inflated: most random members inflate past 256 KiB

# Each test runs with zlib-ng and with the stdlib inflating (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("both_inflaters")


@cache
def text() -> bytes:
    return ndjson(waf_log_records(RECORDS, matched_ratio=0.05, start=datetime(2026, 11, 30, tzinfo=UTC)))


def read(data: bytes) -> tuple[list[str], tuple[int, int, int, int], int]:
    reader = LogObjectReader(open_log_stream(io.BytesIO(data)))
    kept = [item.body for frame in reader for item in frame]
    counts = reader.counts
    return kept, (counts.read, counts.kept, counts.skipped, counts.bad), reader.done


@cache
def one_member() -> tuple[list[str], tuple[int, int, int, int], int]:
    return read(gzip.compress(text()))


@pytest.mark.timeout(120)
@fuzz_settings(25)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=RECORDS * 1200), max_size=6),
    level=st.sampled_from((1, 6, 9)),
)
def test_any_member_split_reads_like_one_member(cuts: list[int], level: int) -> None:
    # GIVEN the same NDJSON bytes cut into members at arbitrary offsets (empty members too)
    whole = text()
    bounds = sorted(min(c, len(whole)) for c in cuts)
    pieces = [whole[a:b] for a, b in zip((0, *bounds), (*bounds, len(whole)), strict=True)]
    data = b"".join(gzip.compress(piece, compresslevel=level) for piece in pieces)
    # WHEN it is read
    # THEN it ends with the same kept records, counts and position as the one-member file
    assert read(data) == one_member()
    assert one_member()[1][0] == RECORDS
