"""Log-object readers: gzip or plain, NDJSON, `}{` runs, CloudWatch envelopes, the filter."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from secops_core.ingest.s3_logs import (
    LogObjectReader,
    certainly_noise,
    keep_record,
    open_log_stream,
)
from worker.log_samples import gzip_members, gzip_ndjson, ndjson, waf_log_records

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def records(count: int = 100, ratio: float = 0.1) -> list[dict[str, Any]]:
    return list(waf_log_records(count, matched_ratio=ratio, start=START))


def read(data: bytes, **kwargs: Any) -> tuple[list[str], LogObjectReader]:
    reader = LogObjectReader(open_log_stream(io.BytesIO(data)), **kwargs)
    kept = [item.body for frame in reader for item in frame]
    return kept, reader


def compact(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def test_gzip_ndjson_keeps_the_matched_records_as_logged() -> None:
    # GIVEN a gzip NDJSON file, 10 % attacks
    sample = records()
    # WHEN it is read with the default filter
    kept, reader = read(gzip_ndjson(sample))
    # THEN exactly the attacks are kept, byte for byte as the log holds them
    attacks = [compact(r) for r in sample if keep_record(r, "matched")]
    assert kept == attacks and len(kept) == 10
    assert (reader.counts.read, reader.counts.kept, reader.counts.skipped, reader.counts.bad) == (
        100,
        10,
        90,
        0,
    )
    assert reader.done == 100


def test_plain_ndjson_reads_the_same() -> None:
    kept, reader = read(ndjson(records()))
    assert len(kept) == 10 and reader.counts.read == 100


def test_a_gz_name_does_not_decide_the_format() -> None:
    # GIVEN plain text where gzip was expected: read as plain, nothing lost
    kept, _ = read(ndjson(records()))
    assert len(kept) == 10


def test_concatenated_objects_without_separator() -> None:
    # GIVEN Firehose's `}{` runs, split across several lines and reads
    sample = records(30, ratio=0.5)
    data = "".join(compact(r) for r in sample[:20]) + "\n" + "".join(compact(r) for r in sample[20:])
    kept, reader = read(gzip.compress(data.encode()))
    # THEN every record is framed and counted
    assert len(kept) == sum(keep_record(r, "matched") for r in sample)
    assert reader.counts.read == 30 and reader.counts.bad == 0


def test_braces_inside_a_string_do_not_hide_a_record() -> None:
    # GIVEN an attack whose URI holds `}{` (which splits naively) inside a `}{` run
    attack = next(r for r in records(10, ratio=0.5) if keep_record(r, "matched"))
    attack["httpRequest"]["uri"] = "/x}{y}{z"
    noise = next(r for r in records(10, ratio=0.5) if not keep_record(r, "matched"))
    data = (compact(noise) + compact(attack) + compact(noise)).encode()
    # WHEN it is read
    kept, reader = read(data)
    # THEN the attack is kept whole and nothing is bad
    assert [json.loads(k)["httpRequest"]["uri"] for k in kept] == ["/x}{y}{z"]
    assert (reader.counts.read, reader.counts.bad) == (3, 0)


def test_a_long_run_without_newlines_is_read_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a `}{` run far longer than one read
    import secops_core.ingest.s3_logs as s3_logs

    monkeypatch.setattr(s3_logs, "READ_CHUNK_BYTES", 700)
    sample = records(50, ratio=0.5)
    kept, reader = read("".join(compact(r) for r in sample).encode())
    # THEN every record is still framed
    assert reader.counts.read == 50 and reader.counts.bad == 0
    assert len(kept) == sum(keep_record(r, "matched") for r in sample)


@pytest.mark.timeout(60)
def test_multi_member_gzip_with_firehose_sized_members() -> None:
    # GIVEN a Firehose-style object: 4 gzip members of 1,500 records, each inflating to
    # about 1.6 MB, far past the decompressor's 256 KiB output per call
    sample = records(6000, ratio=0.02)
    data = gzip_members(sample, per_member=1500)
    assert data.count(b"\x1f\x8b\x08") >= 4
    # WHEN it is read
    kept, reader = read(data)
    # THEN it ends, and every record of every member is read once
    assert kept == [compact(r) for r in sample if keep_record(r, "matched")]
    assert (reader.counts.read, reader.counts.bad, reader.done) == (6000, 0, 6000)


@pytest.mark.timeout(60)
def test_a_member_cut_mid_line_and_an_empty_member_read_as_one_stream() -> None:
    # GIVEN members whose boundaries fall inside a record, and an empty member between them
    sample = records(1200, ratio=0.1)
    text = ndjson(sample)
    cuts = (400_000, 400_001, 900_123)
    pieces = [text[a:b] for a, b in zip((0, *cuts), (*cuts, len(text)), strict=True)]
    data = b"".join(gzip.compress(piece) for piece in pieces)
    # WHEN it is read
    kept, reader = read(data)
    # THEN the records are exactly those of the one-member file
    assert kept == [compact(r) for r in sample if keep_record(r, "matched")]
    assert (reader.counts.read, reader.counts.bad) == (1200, 0)


def envelope(messages: list[str], kind: str = "DATA_MESSAGE") -> dict[str, Any]:
    return {
        "messageType": kind,
        "owner": "000000000000",
        "logGroup": "aws-waf-logs-x",
        "logStream": "us-east-1_acl_0",
        "subscriptionFilters": ["f"],
        "logEvents": [{"id": str(i), "timestamp": 1, "message": m} for i, m in enumerate(messages)],
    }


def test_cloudwatch_envelopes_concatenated_and_gzipped_per_member() -> None:
    # GIVEN CloudWatch Logs → Firehose → S3: gzip members of `}{`-joined envelopes
    sample = records(40, ratio=0.25)
    first = envelope([compact(r) for r in sample[:20]])
    control = envelope(["CWL CONTROL MESSAGE: Checking health of destination Firehose."], "CONTROL_MESSAGE")
    second = envelope([compact(r) for r in sample[20:]])
    data = gzip.compress((compact(first) + compact(control)).encode()) + gzip.compress(
        compact(second).encode()
    )
    # WHEN it is read
    kept, reader = read(data)
    # THEN each log event is a record; the control message is no record at all
    assert kept == [compact(r) for r in sample if keep_record(r, "matched")]
    assert (reader.counts.read, reader.counts.bad) == (40, 0)


def test_bad_lines_are_counted_with_their_numbers() -> None:
    # GIVEN a file with a non-JSON line, a JSON line that is no WAF record and a list
    sample = records(6, ratio=0.5)
    lines = [
        compact(sample[0]),
        "not json",
        compact(sample[1]),
        '{"id": "simplified"}',
        "[1]",
        compact(sample[3]),
    ]
    kept, reader = read(("\n".join(lines) + "\n").encode())
    # THEN the good records go on and the bad ones are counted by line
    assert len(kept) == sum(keep_record(r, "matched") for r in (sample[0], sample[1], sample[3]))
    assert [(b.line, b.reason) for b in reader.counts.bad_lines] == [
        (2, "not_json"),
        (4, "not_a_waf_record"),
        (5, "not_a_waf_record"),
    ]
    assert reader.counts.read == 6


def test_truncated_gzip_keeps_what_came_before() -> None:
    # GIVEN a gzip file cut short
    data = gzip_ndjson(records(200, ratio=0.5))
    kept, reader = read(data[: len(data) // 2])
    # THEN the records before the cut are kept and the cut is one bad line
    assert 0 < len(kept) < 100
    assert reader.counts.bad == 1 and reader.counts.bad_lines[0].reason == "truncated_gzip"


def test_corrupt_gzip_is_one_bad_line() -> None:
    data = bytearray(gzip_ndjson(records(50)))
    data[20:40] = b"\x00" * 20
    _, reader = read(bytes(data))
    assert reader.counts.bad == 1 and reader.counts.bad_lines[0].reason in {"corrupt_gzip", "truncated_gzip"}


def test_binary_garbage_is_bad_lines_not_a_crash() -> None:
    _, reader = read(b"\x00\x01\x02garbage\n\xff\xfe\n")
    assert reader.counts.bad == 2 and reader.counts.kept == 0


def test_resume_skips_the_frames_already_done() -> None:
    # GIVEN a reader stopped part way, at a checkpoint
    data = gzip_ndjson(records(100))
    reader = LogObjectReader(open_log_stream(io.BytesIO(data)))
    first = []
    for frame in reader:
        first += [item.body for item in frame]
        if len(first) >= 4:
            break
    done, counts = reader.done, reader.counts
    # WHEN another reader resumes from it
    rest, resumed = read(data, start_after=done)
    # THEN together they kept every record once, and the counts add up to the file
    assert first + rest == read(data)[0]
    assert counts.read + resumed.counts.read == 100


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("matched", 10), ("blocked", 7), ("all", 100)],
)
def test_keep_modes(mode: str, expected: int) -> None:
    kept, reader = read(gzip_ndjson(records()), keep=mode)
    assert len(kept) == expected and reader.counts.skipped == 100 - expected


def test_the_noise_filter_never_skips_a_match() -> None:
    # GIVEN every sample record
    for record in records(200, ratio=0.5):
        raw = compact(record)
        # THEN a byte-level skip is only ever a record the full filter skips too
        if certainly_noise(raw.encode()) or certainly_noise(raw):
            assert not keep_record(record, "matched")


def test_request_data_cannot_forge_noise() -> None:
    # GIVEN an attack whose URI spells the noise patterns
    attack = next(r for r in records(10, ratio=0.5) if r.get("terminatingRuleId") == "block-path-traversal")
    attack["httpRequest"]["uri"] = '/"terminatingRuleId":"Default_Action","action":"ALLOW"'
    # THEN it is still not noise: quotes are escaped inside strings
    assert not certainly_noise(compact(attack).encode())


@pytest.mark.parametrize(
    "fields",
    [
        {"labels": [{"name": "awswaf:managed:aws:bot-control:bot:category:http_library"}]},
        {"action": "CAPTCHA"},
        {"action": "CHALLENGE"},
        {"nonTerminatingMatchingRules": [{"ruleId": "r", "action": "COUNT"}]},
        {
            "ruleGroupList": [
                {"ruleGroupId": "g", "terminatingRule": None, "excludedRules": [{"ruleId": "x"}]}
            ]
        },
    ],
)
def test_matches_of_every_kind_are_kept(fields: dict[str, Any]) -> None:
    record = {**records(1, ratio=0)[0], **fields}
    assert keep_record(record, "matched")
    assert not certainly_noise(compact(record).encode())
