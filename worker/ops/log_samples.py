"""Synthetic AWS WAF log files: mostly default-allow noise, a share of attacks.

The demo writes one to moto's S3, the benchmark reads a large one, and the tests use small
ones; every record has the shape and field order of WAF's own S3 logging, so the byte
pre-filter meets what it meets in production (docs/architecture.md, "Consumers").
"""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

WEB_ACL = (
    "arn:aws:wafv2:us-east-1:000000000000:regional/webacl/shop-prod/0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
)
_MANAGED_GROUPS = ("AWS#AWSManagedRulesCommonRuleSet", "AWS#AWSManagedRulesSQLiRuleSet")
_PATHS = ("/", "/products", "/cart", "/api/items", "/static/app.js", "/login", "/search")
_AGENTS = ("Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (Macintosh)", "curl/8.4.0")


def _request(rng: random.Random, n: int, uri: str, args: str = "", ip: str | None = None) -> dict[str, Any]:
    return {
        "clientIp": ip or f"198.51.100.{rng.randrange(1, 255)}",
        "country": rng.choice(("US", "DE", "FR", "BR", "JP")),
        "headers": [
            {"name": "Host", "value": "shop.example.com"},
            {"name": "User-Agent", "value": rng.choice(_AGENTS)},
            {"name": "Accept", "value": "*/*"},
        ],
        "uri": uri,
        "args": args,
        "httpVersion": "HTTP/1.1",
        "httpMethod": "GET",
        "requestId": f"req-{n:08d}-{rng.getrandbits(32):08x}",
    }


def _record(timestamp_ms: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timestamp": timestamp_ms,
        "formatVersion": 1,
        "webaclId": WEB_ACL,
        "terminatingRuleId": "Default_Action",
        "terminatingRuleType": "REGULAR",
        "action": "ALLOW",
        "terminatingRuleMatchDetails": [],
        "httpSourceName": "ALB",
        "httpSourceId": "000000000000-app/shop-alb/50dc6c495c0c9188",
        "ruleGroupList": [
            {
                "ruleGroupId": group,
                "terminatingRule": None,
                "nonTerminatingMatchingRules": [],
                "excludedRules": None,
                "customerConfig": None,
            }
            for group in _MANAGED_GROUPS
        ],
        "rateBasedRuleList": [],
        "nonTerminatingMatchingRules": [],
        "requestHeadersInserted": None,
        "responseCodeSent": None,
    }
    record.update(fields)
    return record


def _attack(rng: random.Random, n: int, timestamp_ms: int) -> dict[str, Any]:
    kind = n % 4
    attacker = f"203.0.113.{7 + n % 3}"
    if kind == 0:
        groups: list[dict[str, Any]] = [
            {
                "ruleGroupId": "AWS#AWSManagedRulesSQLiRuleSet",
                "terminatingRule": {
                    "ruleId": "SQLi_QUERYARGUMENTS",
                    "action": "BLOCK",
                    "ruleMatchDetails": None,
                },
                "nonTerminatingMatchingRules": [],
                "excludedRules": None,
            }
        ]
        return _record(
            timestamp_ms,
            terminatingRuleId="AWS-AWSManagedRulesSQLiRuleSet",
            terminatingRuleType="MANAGED_RULE_GROUP",
            action="BLOCK",
            ruleGroupList=groups,
            httpRequest=_request(rng, n, "/search", "q=1'%20OR%20'1'='1", attacker),
            labels=[{"name": "awswaf:managed:aws:sql-database:SQLi_QueryArguments"}],
        )
    if kind == 1:
        return _record(
            timestamp_ms,
            nonTerminatingMatchingRules=[{"ruleId": "xss-count", "action": "COUNT", "ruleMatchDetails": []}],
            httpRequest=_request(rng, n, "/comment", "text=<script>alert(1)</script>", attacker),
        )
    if kind == 2:
        return _record(
            timestamp_ms,
            terminatingRuleId="rate-limit-login",
            terminatingRuleType="RATE_BASED",
            action="BLOCK",
            rateBasedRuleList=[
                {
                    "rateBasedRuleId": "rl-1",
                    "rateBasedRuleName": "rate-limit-login",
                    "limitKey": "IP",
                    "maxRateAllowed": 100,
                }
            ],
            httpRequest=_request(rng, n, "/login", "", attacker),
        )
    return _record(
        timestamp_ms,
        terminatingRuleId="block-path-traversal",
        action="BLOCK",
        httpRequest=_request(rng, n, "/static/../../etc/passwd", "", attacker),
    )


def waf_log_records(
    count: int, *, matched_ratio: float = 0.02, start: datetime, seed: int = 7
) -> Iterator[dict[str, Any]]:
    """``count`` records a millisecond apart from ``start``; about ``matched_ratio`` attacks."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    base_ms = int(start.timestamp() * 1000)
    every = max(1, round(1 / matched_ratio)) if matched_ratio > 0 else 0
    for n in range(count):
        timestamp_ms = base_ms + n
        if every and n % every == every - 1:
            yield _attack(rng, n // every, timestamp_ms)
        else:
            yield _record(timestamp_ms, httpRequest=_request(rng, n, rng.choice(_PATHS)))


def ndjson(records: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> bytes:
    """Newline-delimited compact JSON, as WAF's S3 logging writes a log file."""
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)


def gzip_ndjson(records: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> bytes:
    """A ``….log.gz`` file, compressed record by record so memory stays one record deep."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6) as gz:
        for record in records:
            gz.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
    return out.getvalue()


def gzip_members(records: Iterator[dict[str, Any]] | list[dict[str, Any]], *, per_member: int) -> bytes:
    """Concatenated gzip members of ``per_member`` NDJSON records each.

    Firehose and CloudWatch Logs subscriptions write an object this way: one member per
    delivered batch, often over a megabyte inflated, so a member ends inside any fixed-size
    read of the decompressor.
    """
    batch: list[dict[str, Any]] = []
    members: list[bytes] = []
    for record in records:
        batch.append(record)
        if len(batch) == per_member:
            members.append(gzip_ndjson(batch))
            batch = []
    if batch:
        members.append(gzip_ndjson(batch))
    return b"".join(members)


def log_key(account: str, region: str, web_acl: str, moment: datetime, name: str) -> str:
    """Where WAF's S3 logging puts a file: the date-partitioned layout."""
    return f"AWSLogs/{account}/WAFLogs/{region}/{web_acl}/{moment:%Y/%m/%d/%H/%M}/{name}"
