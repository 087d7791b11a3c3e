"""The date-partitioned layout of WAF's S3 logging: prefixes in range, a key's minute."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from secops_core.ingest.s3_layout import hour_prefixes, in_range, is_web_acl_prefix, key_time, parse_s3_uri

PREFIX = "AWSLogs/123/WAFLogs/us-east-1/acl/"


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://b/AWSLogs/") == ("b", "AWSLogs/")
    assert parse_s3_uri("s3://b") == ("b", "")
    for bad in ("b/x", "s3:///x", "https://b"):
        with pytest.raises(ValueError, match=r"s3://|bucket"):
            parse_s3_uri(bad)


def test_hour_prefixes_cover_the_range_and_nothing_else() -> None:
    # GIVEN a range from 22:30 to 01:10 the next day
    since = datetime(2026, 11, 29, 22, 30, tzinfo=UTC)
    until = datetime(2026, 11, 30, 1, 10, tzinfo=UTC)
    # THEN four hours are listed, in order
    assert list(hour_prefixes(PREFIX, since, until)) == [
        PREFIX + "2026/11/29/22/",
        PREFIX + "2026/11/29/23/",
        PREFIX + "2026/11/30/00/",
        PREFIX + "2026/11/30/01/",
    ]


def test_a_web_acl_prefix_is_recognised() -> None:
    assert is_web_acl_prefix(PREFIX) and is_web_acl_prefix("logs/" + PREFIX)
    assert not is_web_acl_prefix(PREFIX + "2026/") and not is_web_acl_prefix("AWSLogs/123/")


def test_key_time_and_range_edges() -> None:
    key = PREFIX + "2026/11/30/10/05/123_waflogs_us-east-1_acl_20261130T1005Z_abc.log.gz"
    assert key_time(key) == datetime(2026, 11, 30, 10, 5, tzinfo=UTC)
    assert in_range(key, datetime(2026, 11, 30, 10, 5, 30, tzinfo=UTC), None)
    assert not in_range(key, datetime(2026, 11, 30, 10, 6, tzinfo=UTC), None)
    assert not in_range(key, None, datetime(2026, 11, 30, 10, 4, tzinfo=UTC))
    # A key outside the layout (a Firehose prefix) is never filtered out.
    assert key_time("firehose/part-1") is None and in_range("firehose/part-1", datetime.now(UTC), None)
