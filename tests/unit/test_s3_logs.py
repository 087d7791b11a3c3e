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
    ReadLimits,
    certainly_noise,
    keep_record,
    open_log_stream,
)
from worker.ops.log_samples import gzip_members, gzip_ndjson, ndjson, waf_log_records

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)

# Each test runs with zlib-ng and with the stdlib inflating (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("both_inflaters")


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


# ---- hostile objects (issue 19): each bound holds whatever the object holds -----------------


class CountingLoads:
    """``json.loads`` that counts its calls: how many parses a read costs."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, raw: bytes | str) -> Any:
        self.calls += 1
        return json.loads(raw)


def test_a_string_of_many_braces_is_joined_with_one_parse_per_record() -> None:
    # GIVEN a `}{` run whose first record holds an unterminated string of 20,000 `}{` pairs
    # (a record that used to be re-parsed once per pair: quadratic), then a real attack
    attack = next(r for r in records(10, ratio=0.5) if keep_record(r, "matched"))
    hostile = b'{"httpRequest":{"uri":"' + b"}{" * 20_000 + b"x"
    loads = CountingLoads()
    # WHEN it is read
    kept, reader = read(hostile + compact(attack).encode() + b"\n", loads=loads)
    # THEN the hostile run is one bad line, parsed once, and the attack after it is kept
    assert loads.calls <= 3
    assert [b.reason for b in reader.counts.bad_lines] == ["not_json"]
    assert kept == [] or json.loads(kept[0])["httpRequest"]["requestId"] == attack["httpRequest"]["requestId"]


def test_a_split_record_is_joined_in_linear_work_and_kept() -> None:
    # GIVEN an attack whose URI holds 5,000 `}{` pairs, inside a `}{` run
    attack = next(r for r in records(10, ratio=0.5) if keep_record(r, "matched"))
    attack["httpRequest"]["uri"] = "/" + "}{" * 5000
    noise = next(r for r in records(10, ratio=0.5) if not keep_record(r, "matched"))
    loads = CountingLoads()
    kept, reader = read((compact(noise) + compact(attack) + compact(noise)).encode(), loads=loads)
    # THEN it is kept whole after a handful of parses, not one per pair
    assert [json.loads(k)["httpRequest"]["uri"] for k in kept] == [attack["httpRequest"]["uri"]]
    assert loads.calls <= 5 and reader.counts.bad == 0


def test_a_long_join_hands_control_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a join far longer than a tick
    import secops_core.ingest.s3_logs as s3_logs

    monkeypatch.setattr(s3_logs, "TICK_FRAMES", 100)
    hostile = b'{"httpRequest":{"uri":"' + b"}{" * 5_000 + b"x\n"
    reader = LogObjectReader(open_log_stream(io.BytesIO(hostile)))
    # WHEN it is read THEN it yields (a chance to checkpoint and stop) while it joins
    handed = list(reader)
    assert len(handed) >= 40 and reader.activity == "done"
    assert reader.counts.bad == 1


def test_the_time_bound_ends_a_read_with_a_bad_line_naming_it() -> None:
    # GIVEN a clock that moves a second per look, and a 5 s budget
    ticks = iter(range(1_000_000))
    sample = records(20_000, ratio=0.01)
    reader = LogObjectReader(
        open_log_stream(io.BytesIO(gzip_ndjson(sample))), time_budget_s=5, clock=lambda: float(next(ticks))
    )
    # WHEN it is read THEN it stops early, its checkpoint position stands, the bound is named
    list(reader)
    assert reader.done < 20_000
    assert reader.counts.limits == ["read_time"]
    assert reader.counts.bad_lines[-1].reason == "limit_read_time"


def test_a_kept_record_too_large_for_the_queue_is_a_bad_line_and_the_rest_goes_on() -> None:
    # GIVEN an attack padded past what a queue message carries, between two attacks
    attacks = [r for r in records(40, ratio=0.5) if keep_record(r, "matched")][:3]
    attacks[1]["httpRequest"]["args"] = "a" * 300_000
    # WHEN it is read under the default bounds
    kept, reader = read(ndjson(attacks), limits=ReadLimits())
    # THEN the large one is a bad line with its reason, and the ones around it are kept
    assert [json.loads(k)["httpRequest"]["requestId"] for k in kept] == [
        attacks[0]["httpRequest"]["requestId"],
        attacks[2]["httpRequest"]["requestId"],
    ]
    assert [(b.line, b.reason) for b in reader.counts.bad_lines] == [(2, "record_too_large_for_queue")]


def test_identical_records_are_counted_once_kept() -> None:
    # GIVEN the same attack line 1,000 times (an amplifier)
    attack = next(r for r in records(10, ratio=0.5) if keep_record(r, "matched"))
    kept, reader = read(gzip.compress((compact(attack) + "\n").encode() * 1000))
    # THEN it is kept once and the copies are counted
    counts = reader.counts
    assert len(kept) == 1 and (counts.read, counts.kept, counts.duplicates) == (1000, 1, 999)


def test_kept_records_are_capped_per_object() -> None:
    sample = records(400, ratio=0.5)
    kept, reader = read(ndjson(sample), limits=ReadLimits(max_kept=50))
    counts = reader.counts
    assert len(kept) == 50 and counts.capped == sum(keep_record(r, "matched") for r in sample) - 50
    assert counts.limits == ["kept_per_object"]
    assert counts.read == counts.kept + counts.skipped + counts.bad + counts.duplicates + counts.capped


def test_kept_records_are_capped_per_envelope() -> None:
    # GIVEN one CloudWatch envelope of 300 distinct attacks, and a bound of 100 per envelope
    attacks = [r for r in records(600, ratio=0.5) if keep_record(r, "matched")][:300]
    data = compact(envelope([compact(r) for r in attacks])).encode()
    kept, reader = read(data, limits=ReadLimits(max_kept_per_envelope=100))
    # THEN 100 are kept and 200 counted as capped, each event read once
    counts = reader.counts
    assert (len(kept), counts.read, counts.capped, counts.limits) == (100, 300, 200, ["kept_per_envelope"])


def test_an_oversized_envelope_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import secops_core.ingest.s3_logs as s3_logs

    monkeypatch.setattr(s3_logs, "MAX_RECORD_BYTES", 50_000)
    monkeypatch.setattr(s3_logs, "READ_CHUNK_BYTES", 10_000)
    big = compact(envelope([compact(r) for r in records(200, ratio=0.5)])).encode() + b"\n"
    _, reader = read(big)
    assert [b.reason for b in reader.counts.bad_lines] == ["envelope_too_large"]


def test_a_gzip_bomb_stops_at_the_byte_bound() -> None:
    # GIVEN 64 MiB of zeros in one line, gzipped to about 64 KiB
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    # WHEN read with a 16 MiB bound
    reader = LogObjectReader(open_log_stream(io.BytesIO(bomb), max_inflated_bytes=16 * 1024 * 1024))
    list(reader)
    # THEN the read ends there, naming the bound
    assert reader.counts.limits == ["inflated_bytes"]
    assert reader.inflated_bytes <= 17 * 1024 * 1024


def test_a_gzip_bomb_stops_at_the_ratio_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    import secops_core.ingest.log_stream as log_stream

    monkeypatch.setattr(log_stream, "RATIO_GRACE_BYTES", 1024 * 1024)
    bomb = gzip.compress(b"\0" * (32 * 1024 * 1024), compresslevel=9)
    reader = LogObjectReader(open_log_stream(io.BytesIO(bomb), max_ratio=100))
    list(reader)
    assert reader.counts.limits == ["inflation_ratio"]
    assert reader.inflated_bytes < 4 * 1024 * 1024


def waf_noise() -> dict[str, Any]:
    return next(r for r in records(10, ratio=0) if not keep_record(r, "matched"))


def noise_text() -> str:
    text = compact(waf_noise())
    assert certainly_noise(text.encode()), "the sample must start as certain noise"
    return text


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        # A second `action` key: the parse takes the last one.
        ("duplicate action", lambda t: t[:-1] + ',"action":"BLOCK"}'),
        ("duplicate terminatingRuleId", lambda t: t[:-1] + ',"terminatingRuleId":"block-all"}'),
        ("escaped key name", lambda t: t[:-1] + ',"l\\u0061bels":[{"name":"awswaf:x"}]}'),
        ("escaped action key", lambda t: t[:-1] + ',"\\u0061ction":"BLOCK"}'),
        (
            "rule entry without ruleId",
            lambda t: t.replace(
                '"nonTerminatingMatchingRules":[],"requestHeadersInserted"',
                '"nonTerminatingMatchingRules":[{"action":"COUNT"}],"requestHeadersInserted"',
            ),
        ),
        (
            "terminating rule without ruleId",
            lambda t: t.replace('"terminatingRule":null', '"terminatingRule":{"action":"BLOCK"}', 1),
        ),
        (
            "rate rule without ids",
            lambda t: t.replace('"rateBasedRuleList":[]', '"rateBasedRuleList":[{"limitKey":"IP"}]'),
        ),
        (
            "excluded rule without ruleId",
            lambda t: t.replace('"excludedRules":null', '"excludedRules":[{"exclusionType":"X"}]', 1),
        ),
        (
            "spaced action",
            lambda t: t.replace('"action":"ALLOW"', '"action": "ALLOW"')[:-1] + ',"action" :"BLOCK"}',
        ),
    ],
)
def test_the_prefilter_refuses_what_is_not_in_compact_form(name: str, edit: Any) -> None:
    # GIVEN a default-allow record rewritten so that a full parse keeps it
    text = edit(noise_text())
    assert keep_record(json.loads(text), "matched"), name
    # THEN the byte prefilter does not skip it, as bytes or as an envelope's text, and it is kept
    assert not certainly_noise(text.encode()) and not certainly_noise(text)
    kept, _ = read((text + "\n").encode())
    assert kept == [text]


def test_a_bom_is_not_part_of_the_first_record() -> None:
    # GIVEN a file that starts with a UTF-8 BOM before an attack
    attack = next(r for r in records(10, ratio=0.5) if keep_record(r, "matched"))
    kept, reader = read(b"\xef\xbb\xbf" + ndjson([attack, waf_noise()]))
    # THEN the kept text is the record alone, and the noise after it is skipped
    assert kept == [compact(attack)] and not kept[0].startswith("\ufeff")
    assert reader.counts.skipped == 1


def test_runs_of_blank_lines_keep_line_numbers() -> None:
    # GIVEN records separated by runs of blank lines (CRLF and LF), gzipped and plain
    sample = records(3, ratio=1.0)
    text = (
        compact(sample[0]) + "\n\n\r\n\n" + "not json\n" + "\n" * 5000 + compact(sample[1]) + "\nbad\n"
    ).encode()
    for data in (text, gzip.compress(text)):
        kept, reader = read(data)
        # THEN the bad lines carry their own line numbers, and the records are kept
        assert len(kept) == 2
        assert [(b.line, b.reason) for b in reader.counts.bad_lines] == [(5, "not_json"), (5007, "not_json")]


def test_a_file_of_blank_lines_hands_control_back() -> None:
    reader = LogObjectReader(open_log_stream(io.BytesIO(gzip.compress(b"\n" * 20_000_000))))
    assert sum(1 for _ in reader) >= 1 and reader.counts.read == 0


def test_zlib_ng_inflates_where_it_is_installed() -> None:
    # GIVEN the locked dependencies THEN zlib-ng inflates, not the fallback
    from secops_core.ingest import log_stream

    assert log_stream._inflate_module().__name__ == "zlib_ng.zlib_ng"
