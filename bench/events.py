"""Deterministic benchmark traffic: a realistic mix of WAF events, from a seed.

Most WAF traffic worth queueing is blocked attacks (severity 3, `monitoring`); some is
noise the triage closes (IP reputation, bots, size limits, default-allow: 0-2); a few
attacks got through (allowed, or matched in COUNT mode: 4-5, `escalated`, one SNS
publish each). Both event shapes are mixed, and a few simplified events arrive wrapped
as the seed's request payloads. Every event is unique (no duplicate keys), so each
message ends in exactly one terminal outcome and the counts can be checked.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Body = dict[str, Any]

_SOURCE_IPS = [
    f"{prefix}.{host}" for prefix in ("198.51.100", "203.0.113", "192.0.2") for host in range(1, 61)
]
_COUNTRIES = ["US", "NL", "BR", "CN", "RU", "DE", "IN", "VN", "FR", "GB"]
_URIS = ["/login", "/products", "/api/v1/search", "/comments", "/wp-login.php", "/cart", "/admin", "/"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64)",
    "sqlmap/1.7",
    "curl/8.4.0",
    "python-requests/2.31",
    "Go-http-client/1.1",
]


@dataclass(frozen=True)
class BenchEvent:
    """One queue message of the benchmark and what the worker should make of it."""

    body: str
    key: str
    kind: str
    expected_status: str  # closed | monitoring | escalated (the scripted model answers 0)


class _Factory:
    """Builds the bodies of one kind; ``n`` makes ids unique, ``rng`` varies the rest."""

    def __init__(self, rng: random.Random, now: datetime, seed: int) -> None:
        self.rng = rng
        self.now = now
        self.seed = seed

    def _when(self) -> datetime:
        return self.now - timedelta(seconds=self.rng.randint(0, 3600))

    def native(
        self,
        n: int,
        *,
        group: str | None,
        rule_id: str,
        label: str | None,
        action: str = "BLOCK",
        counted: bool = False,
        args: str = "",
    ) -> Body:
        if group is None:
            terminating, terminating_type, final_action, groups = "Default_Action", "REGULAR", "ALLOW", []
        elif counted:
            entry = {
                "ruleGroupId": f"AWS#{group}",
                "terminatingRule": None,
                "nonTerminatingMatchingRules": [{"ruleId": rule_id, "action": "COUNT"}],
                "excludedRules": None,
            }
            terminating, terminating_type, final_action, groups = (
                "Default_Action",
                "REGULAR",
                "ALLOW",
                [entry],
            )
        else:
            entry = {
                "ruleGroupId": f"AWS#{group}",
                "terminatingRule": {"ruleId": rule_id, "action": action},
                "nonTerminatingMatchingRules": [],
                "excludedRules": None,
            }
            terminating, terminating_type, final_action = f"AWS-{group}", "MANAGED_RULE_GROUP", action
            groups = [entry]
        return {
            "timestamp": int(self._when().timestamp() * 1000),
            "formatVersion": 1,
            "webaclId": "arn:aws:wafv2:us-east-1:<ACCOUNT_ID>:regional/webacl/shop-prod/bench",
            "terminatingRuleId": terminating,
            "terminatingRuleType": terminating_type,
            "action": final_action,
            "terminatingRuleMatchDetails": [],
            "httpSourceName": "ALB",
            "httpSourceId": "<ACCOUNT_ID>-app/shop-alb/bench",
            "ruleGroupList": groups,
            "rateBasedRuleList": [],
            "nonTerminatingMatchingRules": [],
            "httpRequest": {
                "clientIp": self.rng.choice(_SOURCE_IPS),
                "country": self.rng.choice(_COUNTRIES),
                "headers": [
                    {"name": "Host", "value": "shop.example.com"},
                    {"name": "User-Agent", "value": self.rng.choice(_AGENTS)},
                    {"name": "Accept", "value": "*/*"},
                ],
                "uri": self.rng.choice(_URIS),
                "args": args,
                "httpVersion": "HTTP/1.1",
                "httpMethod": self.rng.choice(["GET", "POST"]),
                "requestId": f"1-bench{self.seed}-{n:08d}",
            },
            "labels": [{"name": label}] if label else [],
        }

    def simplified(self, n: int, *, rule_name: str, action: str = "BLOCK") -> Body:
        return {
            "id": f"bench-{self.seed}-{n:08d}",
            "timestamp": self._when().isoformat().replace("+00:00", "Z"),
            "action": action,
            "source_ip": self.rng.choice(_SOURCE_IPS),
            "uri": self.rng.choice(_URIS),
            "http_method": self.rng.choice(["GET", "POST"]),
            "rule_name": rule_name,
            "country": self.rng.choice(_COUNTRIES),
            "user_agent": self.rng.choice(_AGENTS),
        }


_SQLI_LABEL = "awswaf:managed:aws:sql-database:SQLi_QueryArguments"
_XSS_LABEL = "awswaf:managed:aws:core-rule-set:CrossSiteScripting_Body"
_LOG4J_LABEL = "awswaf:managed:aws:known-bad-inputs:Log4JRCE_Header"
_SQLI_ARGS = "id=1%27%20OR%20%271%27%3D%271"

# (kind, weight in percent, builder). The weights sum to 100.
_KINDS: list[tuple[str, int, Callable[[_Factory, int], Body]]] = [
    # blocked attacks -> 3 -> monitoring (65 %)
    (
        "native_sqli_blocked",
        25,
        lambda f, n: f.native(
            n,
            group="AWSManagedRulesSQLiRuleSet",
            rule_id="SQLi_QUERYARGUMENTS",
            label=_SQLI_LABEL,
            args=_SQLI_ARGS,
        ),
    ),
    (
        "native_xss_blocked",
        10,
        lambda f, n: f.native(
            n, group="AWSManagedRulesCommonRuleSet", rule_id="CrossSiteScripting_BODY", label=_XSS_LABEL
        ),
    ),
    (
        "native_log4j_blocked",
        5,
        lambda f, n: f.native(
            n, group="AWSManagedRulesKnownBadInputsRuleSet", rule_id="Log4JRCE_HEADER", label=_LOG4J_LABEL
        ),
    ),
    ("simple_sqli_blocked", 15, lambda f, n: f.simplified(n, rule_name="SQLi_BODY")),
    ("simple_lfi_blocked", 7, lambda f, n: f.simplified(n, rule_name="GenericLFI_QUERYARGUMENTS")),
    (
        "wrapped_xss_blocked",
        3,
        lambda f, n: {
            "prompt": json.dumps(
                {"action": "analyze", "event": f.simplified(n, rule_name="CrossSiteScripting_QUERYARGUMENTS")}
            )
        },
    ),
    # noise -> 0-2 -> closed (25 %)
    (
        "native_ip_reputation",
        8,
        lambda f, n: f.native(
            n,
            group="AWSManagedRulesAmazonIpReputationList",
            rule_id="AWSManagedIPReputationList",
            label="awswaf:managed:aws:amazon-ip-list:AWSManagedIPReputationList",
        ),
    ),
    (
        "native_bot_category",
        6,
        lambda f, n: f.native(
            n,
            group="AWSManagedRulesBotControlRuleSet",
            rule_id="CategoryHttpLibrary",
            label="awswaf:managed:aws:bot-control:bot:category:http_library",
        ),
    ),
    ("native_default_allow", 5, lambda f, n: f.native(n, group=None, rule_id="Default_Action", label=None)),
    ("simple_size_restriction", 6, lambda f, n: f.simplified(n, rule_name="SizeRestrictions_BODY")),
    # attacks that reached the application -> 4-5 -> escalated + SNS (10 %)
    (
        "native_xss_counted",
        4,
        lambda f, n: f.native(
            n,
            group="AWSManagedRulesCommonRuleSet",
            rule_id="CrossSiteScripting_BODY",
            label=_XSS_LABEL,
            counted=True,
        ),
    ),
    (
        "native_log4j_counted",
        2,
        lambda f, n: f.native(
            n,
            group="AWSManagedRulesKnownBadInputsRuleSet",
            rule_id="Log4JRCE_HEADER",
            label=_LOG4J_LABEL,
            counted=True,
        ),
    ),
    (
        "simple_lfi_allowed",
        2,
        lambda f, n: f.simplified(n, rule_name="GenericLFI_QUERYARGUMENTS", action="ALLOW"),
    ),
    (
        "wrapped_sqli_allowed",
        2,
        lambda f, n: {"action": "analyze", "event": f.simplified(n, rule_name="SQLi_BODY", action="ALLOW")},
    ),
]


def generate(count: int, *, seed: int = 7, now: datetime | None = None) -> list[BenchEvent]:
    """``count`` unique events from the mix, drawn with ``seed``; timestamps in the hour before ``now``."""
    # Imported here: the helper processes re-import the benchmark's main module when
    # they start, and should not pay for the runtime's models.
    from secops_core.triage import triage
    from secops_core.waf.floor import severity_floor
    from worker.pipeline.processor import parse_message

    rng = random.Random(seed)
    factory = _Factory(rng, now or datetime.now(UTC), seed)
    names = [kind for kind, _, _ in _KINDS]
    weights = [weight for _, weight, _ in _KINDS]
    builders = {kind: build for kind, _, build in _KINDS}
    events: list[BenchEvent] = []
    seen: set[str] = set()
    for n in range(count):
        kind = rng.choices(names, weights)[0]
        body = json.dumps(builders[kind](factory, n), separators=(",", ":"))
        event = parse_message(body).event
        if event.event_key in seen:
            raise AssertionError(f"bench event {n} ({kind}) repeats key {event.event_key}")
        seen.add(event.event_key)
        status = triage(severity_floor(event).severity).status
        events.append(BenchEvent(body=body, key=event.event_key, kind=kind, expected_status=status))
    return events


def expected_statuses(events: list[BenchEvent]) -> dict[str, int]:
    return dict(Counter(event.expected_status for event in events))


# ---- the flood (issue 13): one attack is many requests -----------------------------------------

# The scanner of the flood: one IP, SQL injection matched in COUNT mode (so every request
# reached the application), spread over three endpoints.
FLOOD_SCANNER_IP = "203.0.113.200"
_SCANNER_URIS = ("/api/v1/search", "/products", "/catalog")
_SQLI_PAYLOADS = (
    "id=1%27%20OR%20%271%27%3D%271",
    "q=1%20UNION%20SELECT%20NULL--",
    "id=1%27%3B%20DROP%20TABLE%20users--",
    "sort=(SELECT%20SLEEP(5))",
)
# Distinct attacks: each its own rule, disposition, method and URI template, so each
# has an analysis signature of its own. (builder, reached the application?)
_DISTINCT_PATHS = (
    "login",
    "admin",
    "account",
    "checkout",
    "orders",
    "reports",
    "upload",
    "export",
    "profile",
    "settings",
)
_NOISE_KINDS = (
    "native_ip_reputation",
    "native_bot_category",
    "native_default_allow",
    "simple_size_restriction",
)


@dataclass(frozen=True)
class FloodMix:
    """How many events of each part of the flood; ``scale`` shrinks it for a smoke run."""

    scanner: int = 600
    botnet: int = 200
    distinct: int = 50
    noise: int = 200

    def scaled(self, scale: float) -> FloodMix:
        def part(n: int) -> int:
            return max(1, round(n * scale))

        return FloodMix(part(self.scanner), part(self.botnet), part(self.distinct), part(self.noise))

    @property
    def total(self) -> int:
        return self.scanner + self.botnet + self.distinct + self.noise


def _distinct_attack(f: _Factory, n: int, i: int) -> tuple[str, Body]:
    """The i-th distinct attack: a rule family, a disposition, a method and a path."""
    path = f"/{_DISTINCT_PATHS[i % len(_DISTINCT_PATHS)]}/{chr(97 + i // len(_DISTINCT_PATHS))}"
    family = i % 5
    if family == 0:
        body = f.simplified(n, rule_name="SQLi_BODY", action="ALLOW")
        kind = "distinct_sqli_allowed"
    elif family == 1:
        body = f.native(
            n,
            group="AWSManagedRulesCommonRuleSet",
            rule_id="CrossSiteScripting_BODY",
            label=_XSS_LABEL,
            counted=True,
        )
        kind = "distinct_xss_counted"
    elif family == 2:
        body = f.native(
            n,
            group="AWSManagedRulesKnownBadInputsRuleSet",
            rule_id="Log4JRCE_HEADER",
            label=_LOG4J_LABEL,
            counted=True,
        )
        kind = "distinct_log4j_counted"
    elif family == 3:
        body = f.simplified(n, rule_name="GenericLFI_QUERYARGUMENTS", action="ALLOW")
        kind = "distinct_lfi_allowed"
    else:
        body = f.simplified(n, rule_name="SQLi_BODY")
        kind = "distinct_sqli_blocked"
    method = "POST" if i % 2 else "GET"
    if "httpRequest" in body:
        body["httpRequest"]["uri"] = path
        body["httpRequest"]["httpMethod"] = method
    else:
        body["uri"] = path
        body["http_method"] = method
    return kind, body


def generate_flood(
    mix: FloodMix | None = None, *, seed: int = 7, now: datetime | None = None, window_s: int = 600
) -> list[BenchEvent]:
    """The flood of issue 13, shuffled as it would arrive: a scanner, a botnet, distinct
    attacks and noise, every event unique, all within ``window_s`` before ``now`` (well
    inside an incident's quiet period, so the scanner is one incident).
    """
    from secops_core.triage import triage
    from secops_core.waf.floor import severity_floor
    from worker.pipeline.processor import parse_message

    mix = mix or FloodMix()
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    factory = _Factory(rng, now, seed)
    builders = {kind: build for kind, _, build in _KINDS}
    bodies: list[tuple[str, Body]] = []

    def when(body: Body) -> Body:
        at = now - timedelta(seconds=rng.uniform(0, window_s))
        if "httpRequest" in body:
            body["timestamp"] = int(at.timestamp() * 1000)
        else:
            body["timestamp"] = at.isoformat().replace("+00:00", "Z")
        return body

    n = 0
    for i in range(mix.scanner):
        body = factory.native(
            n,
            group="AWSManagedRulesSQLiRuleSet",
            rule_id="SQLi_QUERYARGUMENTS",
            label=_SQLI_LABEL,
            counted=True,
            args=_SQLI_PAYLOADS[i % len(_SQLI_PAYLOADS)],
        )
        body["httpRequest"].update(
            clientIp=FLOOD_SCANNER_IP, uri=_SCANNER_URIS[i % len(_SCANNER_URIS)], httpMethod="GET"
        )
        body["httpRequest"]["headers"][1]["value"] = "sqlmap/1.7"
        bodies.append(("scanner_sqli_counted", when(body)))
        n += 1
    for i in range(mix.botnet):
        body = factory.native(
            n, group="AWSManagedRulesCommonRuleSet", rule_id="CrossSiteScripting_BODY", label=_XSS_LABEL
        )
        body["httpRequest"].update(
            clientIp=f"198.18.{i // 250}.{i % 250 + 1}", uri="/comments", httpMethod="POST"
        )
        bodies.append(("botnet_xss_blocked", when(body)))
        n += 1
    for i in range(mix.distinct):
        kind, body = _distinct_attack(factory, n, i)
        bodies.append((kind, when(body)))
        n += 1
    for i in range(mix.noise):
        kind = _NOISE_KINDS[i % len(_NOISE_KINDS)]
        bodies.append((kind, when(builders[kind](factory, n))))
        n += 1
    rng.shuffle(bodies)

    events: list[BenchEvent] = []
    seen: set[str] = set()
    for kind, value in bodies:
        body = json.dumps(value, separators=(",", ":"))
        event = parse_message(body).event
        if event.event_key in seen:
            raise AssertionError(f"flood event ({kind}) repeats key {event.event_key}")
        seen.add(event.event_key)
        status = triage(severity_floor(event).severity).status
        events.append(BenchEvent(body=body, key=event.event_key, kind=kind, expected_status=status))
    return events
