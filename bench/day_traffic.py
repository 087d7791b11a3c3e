"""A day of one web ACL's traffic, as WAF's S3 logging writes it (the ``day`` scenario).

The web ACL is configured the way many real ones are, rules in priority order:

0. ``GeoBlock-Sanctioned`` (custom, geo match, BLOCK for a few countries). A geo match
   rule "labels every request that it inspects regardless of whether it finds a match"
   (AWS WAF API reference, GeoMatchStatement): every record carries
   ``awswaf:clientip:geo:country:<CC>`` and ``…:region:<CC>-<RR>``.
1. ``AWSManagedRulesAmazonIpReputationList`` (BLOCK): known-bad addresses.
2. ``login-rate-limit`` (rate-based, BLOCK, POST /login over 100 per 5 minutes per IP).
3. ``AWSManagedRulesBotControlRuleSet``, common level: it labels every bot it recognizes
   with ``bot:category:*`` and ``bot:name:*``, a verified one with ``bot:verified`` and
   no signal labels, and its Category* rules block the unverified ones (AWS WAF
   Developer Guide, "AWS WAF Bot Control rule group" and "Explicitly allowing verified
   bots").
4. ``AWSManagedRulesCommonRuleSet`` with ``SizeRestrictions_BODY`` overridden to COUNT:
   legitimate uploads exceed its 8 KB body limit all day.
5. ``AWSManagedRulesSQLiRuleSet`` overridden to COUNT, and the custom label-match rule
   ``block-sqli-outside-search`` blocking its labels except on ``/api/v1/search`` (the
   "count, then block by label" pattern the guide describes for exceptions).

The mix of one hour (``HourMix``), and why:

- 83 % people browsing the shop: default ALLOW, only the geo labels.
- 7 % verified crawlers (Googlebot, Bingbot): ALLOW with Bot Control's identity labels.
- 2 % unverified HTTP libraries blocked by ``CategoryHttpLibrary``.
- 2 % uploads over the body limit (``SizeRestrictions_BODY`` counted; they reach the app).
- 3 % addresses on the IP reputation list, 1 % from the blocked countries.
- Once a day, a login burst from three addresses (rate-based blocks over two hours), a
  scanner probing for files and injections for an hour (a browser user agent mostly, its
  tool's own on 30 % of the probes, so CRS's ``UserAgent_BadBots_HEADER`` blocks those),
  and one attacker whose SQL injection reached the application through the excepted
  ``/api/v1/search`` path, beside blocked attempts elsewhere and ordinary browsing.

The shares are this scenario's assumptions for a busy shop, stated so the figures can
be read against them; every record's shape (rule groups evaluated, matches, labels,
headers) follows the native log format. Each record is tagged with its ``kind`` in
:class:`DayRecord` so the benchmark can check what became of it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

WEB_ACL = (
    "arn:aws:wafv2:us-east-1:000000000000:regional/webacl/shop-prod/0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
)
SOURCE_ID = "000000000000-app/shop-alb/50dc6c495c0c9188"
HOST = "shop.example.com"
SEARCH_PATH = "/api/v1/search"
ATTACKER_IP = "203.0.113.66"
SCANNER_IP = "198.51.100.99"
LOGIN_BURST_IPS = ("192.0.2.10", "192.0.2.11", "192.0.2.12")
BLOCKED_COUNTRIES = (("KP", "KP-01"), ("IR", "IR-07"), ("SY", "SY-DI"))
_COUNTRIES = (
    ("US", "US-VA"),
    ("US", "US-CA"),
    ("DE", "DE-BE"),
    ("FR", "FR-IDF"),
    ("GB", "GB-LND"),
    ("NL", "NL-NH"),
    ("BR", "BR-SP"),
    ("JP", "JP-13"),
    ("IN", "IN-MH"),
)
_WEBKIT = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
_BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
    f"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) {_WEBKIT} Version/18.1 Safari/605.1.15",
    f"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) {_WEBKIT} Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
_CRAWLERS = (
    ("googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    ("bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"),
)
_LIBRARIES = (("python_requests", "python-requests/2.32.3"), ("go_http_client", "Go-http-client/1.1"))
_SCANNER_TOOL_UA = "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000412)"
_PAGES = ("/", "/products", "/cart", "/checkout", "/account", "/search", "/login", "/help")
_NS = "awswaf:managed:aws:"
_GROUPS = {
    "ip": "AWS#AWSManagedRulesAmazonIpReputationList",
    "bot": "AWS#AWSManagedRulesBotControlRuleSet",
    "crs": "AWS#AWSManagedRulesCommonRuleSet",
    "sqli": "AWS#AWSManagedRulesSQLiRuleSet",
}
_ORDER = ("ip", "bot", "crs", "sqli")
# The scanner's probes: (URI, args, CRS rule that blocks it or None, SQLi?).
_PROBES = (
    ("/.env", "", "RestrictedExtensions_URIPATH", False),
    ("/backup.sql.bak", "", "RestrictedExtensions_URIPATH", False),
    ("/config.ini", "", "RestrictedExtensions_URIPATH", False),
    ("/static/../../../etc/passwd", "", "GenericLFI_URIPATH", False),
    ("/download", "file=../../../../etc/shadow", "GenericLFI_QUERYARGUMENTS", False),
    ("/products", "id=1%20UNION%20SELECT%20password%20FROM%20users", None, True),
    ("/cart", "item=1'%20OR%20'1'='1", None, True),
    ("/wp-login.php", "", None, False),
    ("/phpinfo.php", "", None, False),
    ("/admin/", "", None, False),
    ("/.git/config", "", None, False),
    ("/server-status", "", None, False),
)


@dataclass(frozen=True)
class HourMix:
    """Records in one ordinary hour, by kind (the module's docstring says why)."""

    human: int = 4980
    verified_bot: int = 420
    http_library: int = 120
    upload: int = 120
    ip_reputation: int = 180
    geo_block: int = 60

    @property
    def total(self) -> int:
        return (
            self.human
            + self.verified_bot
            + self.http_library
            + self.upload
            + self.ip_reputation
            + self.geo_block
        )

    def scaled(self, records_per_hour: int) -> HourMix:
        factor = records_per_hour / self.total
        return HourMix(
            **{name: max(1, round(getattr(self, name) * factor)) for name in self.__dataclass_fields__}
        )


@dataclass(frozen=True)
class DayPlan:
    hours: int = 24
    mix: HourMix = HourMix()
    start: datetime = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    # Once a day: the login burst (two hours), the scanner (one hour), the attacker.
    login_burst_hour: int = 3
    login_burst_per_hour: int = 300
    scanner_hour: int = 9
    scanner_requests: int = 600
    attacker_hour: int = 14
    attacker_sqli_reached: int = 30
    attacker_sqli_blocked: int = 10
    attacker_browsing: int = 20


@dataclass(frozen=True)
class DayRecord:
    kind: str
    record: dict[str, Any]


class _Hour:
    def __init__(self, rng: random.Random, start: datetime, hour: int) -> None:
        self.rng = rng
        self.start = start + timedelta(hours=hour)
        self.hour = hour
        self.serial = 0

    def _timestamp(self) -> int:
        moment = self.start + timedelta(milliseconds=self.rng.randrange(3_600_000))
        return int(moment.timestamp() * 1000)

    def _request(
        self,
        ip: str,
        uri: str,
        *,
        args: str = "",
        method: str = "GET",
        agent: str | None = None,
        country: str = "US",
        extra: tuple[tuple[str, str], ...] = (),
    ) -> dict[str, Any]:
        self.serial += 1
        headers = [
            ("Host", HOST),
            ("User-Agent", agent or self.rng.choice(_BROWSERS)),
            ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ("Accept-Language", "en-US,en;q=0.9"),
            ("Accept-Encoding", "gzip, deflate, br"),
            ("Cookie", f"session={self.rng.getrandbits(64):016x}"),
            *extra,
        ]
        return {
            "clientIp": ip,
            "country": country,
            "headers": [{"name": n, "value": v} for n, v in headers],
            "uri": uri,
            "args": args,
            "httpVersion": "HTTP/2.0",
            "httpMethod": method,
            "requestId": f"1-{self.hour:02d}{self.serial:07d}-{self.rng.getrandbits(48):012x}",
        }

    def record(
        self,
        request: dict[str, Any],
        region: tuple[str, str],
        *,
        action: str = "ALLOW",
        terminating: str = "Default_Action",
        terminating_type: str = "REGULAR",
        stop_at: str | None = None,
        group_matches: dict[str, dict[str, Any]] | None = None,
        labels: tuple[str, ...] = (),
        rate_based: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A native record; rule groups after a terminating one were not evaluated."""
        groups = []
        for name in _ORDER:
            entry: dict[str, Any] = {
                "ruleGroupId": _GROUPS[name],
                "terminatingRule": None,
                "nonTerminatingMatchingRules": [],
                "excludedRules": None,
                "customerConfig": None,
            }
            entry.update((group_matches or {}).get(name, {}))
            groups.append(entry)
            if name == stop_at:
                break
        country, subdivision = region
        request["country"] = country
        return {
            "timestamp": self._timestamp(),
            "formatVersion": 1,
            "webaclId": WEB_ACL,
            "terminatingRuleId": terminating,
            "terminatingRuleType": terminating_type,
            "action": action,
            "terminatingRuleMatchDetails": [],
            "httpSourceName": "ALB",
            "httpSourceId": SOURCE_ID,
            "ruleGroupList": [] if stop_at == "geo" else groups,
            "rateBasedRuleList": rate_based or [],
            "nonTerminatingMatchingRules": [],
            "requestHeadersInserted": None,
            "responseCodeSent": None,
            "httpRequest": request,
            "labels": [
                {"name": f"awswaf:clientip:geo:country:{country}"},
                {"name": f"awswaf:clientip:geo:region:{subdivision}"},
                *({"name": label} for label in labels),
            ],
        }

    # ---- kinds ----------------------------------------------------------------------------

    def _ip(self, pool: int, prefix: str = "100.64") -> str:
        n = self.rng.randrange(pool)
        return f"{prefix}.{n // 250}.{n % 250 + 1}"

    def _page(self) -> str:
        page = self.rng.choice(_PAGES)
        return (
            f"/products/{self.rng.randrange(1, 5000)}"
            if page == "/products" and self.rng.random() < 0.7
            else page
        )

    def human(self, ip: str | None = None) -> dict[str, Any]:
        request = self._request(ip or self._ip(3000), self._page())
        return self.record(request, self.rng.choice(_COUNTRIES))

    def verified_bot(self) -> dict[str, Any]:
        name, agent = self.rng.choice(_CRAWLERS)
        request = self._request(self._ip(40, "66.249"), self._page(), agent=agent)
        labels = (
            f"{_NS}bot-control:bot:category:search_engine",
            f"{_NS}bot-control:bot:name:{name}",
            f"{_NS}bot-control:bot:verified",
        )
        return self.record(request, ("US", "US-CA"), labels=labels)

    def http_library(self) -> dict[str, Any]:
        name, agent = self.rng.choice(_LIBRARIES)
        request = self._request(
            self._ip(200, "172.16"), f"/api/v1/items/{self.rng.randrange(1, 900)}", agent=agent
        )
        return self._group_block(
            request,
            self.rng.choice(_COUNTRIES),
            "bot",
            "CategoryHttpLibrary",
            (f"{_NS}bot-control:bot:category:http_library", f"{_NS}bot-control:bot:name:{name}"),
        )

    def upload(self) -> dict[str, Any]:
        request = self._request(
            self._ip(3000), "/api/v1/uploads", method="POST", extra=(("Content-Type", "multipart/form-data"),)
        )
        return self.record(
            request,
            self.rng.choice(_COUNTRIES),
            group_matches={
                "crs": {
                    "nonTerminatingMatchingRules": [
                        {"ruleId": "SizeRestrictions_BODY", "action": "COUNT", "ruleMatchDetails": []}
                    ]
                }
            },
            labels=(f"{_NS}core-rule-set:SizeRestrictions_Body",),
        )

    def ip_reputation(self) -> dict[str, Any]:
        rule = self.rng.choice(
            ("AWSManagedIPReputationList", "AWSManagedIPReputationList", "AWSManagedReconnaissanceList")
        )
        request = self._request(self._ip(400, "45.155"), self._page())
        return self._group_block(
            request, self.rng.choice(_COUNTRIES), "ip", rule, (f"{_NS}amazon-ip-list:{rule}",)
        )

    def geo_block(self) -> dict[str, Any]:
        request = self._request(self._ip(100, "5.160"), self._page())
        return self.record(
            request,
            self.rng.choice(BLOCKED_COUNTRIES),
            action="BLOCK",
            terminating="GeoBlock-Sanctioned",
            stop_at="geo",
        )

    def login_burst(self) -> dict[str, Any]:
        ip = self.rng.choice(LOGIN_BURST_IPS)
        request = self._request(ip, "/login", method="POST", agent=_BROWSERS[0])
        rate = [
            {
                "rateBasedRuleId": "rbr-login-0001",
                "rateBasedRuleName": "login-rate-limit",
                "limitKey": "IP",
                "maxRateAllowed": 100,
                "evaluationWindowSec": 300,
                "customValues": None,
            }
        ]
        return self.record(
            request,
            ("NL", "NL-NH"),
            action="BLOCK",
            terminating="login-rate-limit",
            terminating_type="RATE_BASED",
            stop_at="ip",
            rate_based=rate,
        )

    def scanner(self) -> dict[str, Any]:
        uri, args, crs_rule, sqli = self.rng.choice(_PROBES)
        tool_ua = self.rng.random() < 0.3
        request = self._request(
            SCANNER_IP, uri, args=args, agent=_SCANNER_TOOL_UA if tool_ua else _BROWSERS[3]
        )
        region = ("NL", "NL-NH")
        if tool_ua:
            return self._group_block(
                request, region, "crs", "UserAgent_BadBots_HEADER", (f"{_NS}core-rule-set:BadBots_Header",)
            )
        if crs_rule is not None:
            label = crs_rule.replace("_URIPATH", "_URIPath").replace("_QUERYARGUMENTS", "_QueryArguments")
            return self._group_block(request, region, "crs", crs_rule, (f"{_NS}core-rule-set:{label}",))
        if sqli:
            return self.sqli(request, region, reached=False)
        return self.record(request, region)

    def _group_block(
        self, request: dict[str, Any], region: tuple[str, str], group: str, rule: str, labels: tuple[str, ...]
    ) -> dict[str, Any]:
        """A request the rule ``rule`` of the managed group ``group`` blocked, as WAF logs it."""
        return self.record(
            request,
            region,
            action="BLOCK",
            terminating=_GROUPS[group].replace("#", "-"),
            terminating_type="MANAGED_RULE_GROUP",
            stop_at=group,
            group_matches={
                group: {"terminatingRule": {"ruleId": rule, "action": "BLOCK", "ruleMatchDetails": None}}
            },
            labels=labels,
        )

    def sqli(self, request: dict[str, Any], region: tuple[str, str], *, reached: bool) -> dict[str, Any]:
        """The SQLi group counts; the label rule blocks unless the path is the excepted one."""
        matches = {
            "sqli": {
                "nonTerminatingMatchingRules": [
                    {
                        "ruleId": "SQLi_QUERYARGUMENTS",
                        "action": "COUNT",
                        "ruleMatchDetails": [
                            {
                                "conditionType": "SQL_INJECTION",
                                "location": "QUERY_STRING",
                                "matchedData": ["OR", "1"],
                            }
                        ],
                    }
                ]
            }
        }
        labels = (f"{_NS}sql-database:SQLi_QueryArguments",)
        if reached:
            return self.record(request, region, group_matches=matches, labels=labels)
        return self.record(
            request,
            region,
            action="BLOCK",
            terminating="block-sqli-outside-search",
            group_matches=matches,
            labels=labels,
        )

    def attacker(self, kind: str) -> dict[str, Any]:
        region = ("RO", "RO-B")
        if kind == "reached":
            payload = self.rng.choice(
                (
                    "q=shoes'%20UNION%20SELECT%20username,password%20FROM%20users--",
                    "q=1'%20OR%20SLEEP(5)--",
                    "q=x'%20AND%201=CONVERT(int,@@version)--",
                )
            )
            request = self._request(ATTACKER_IP, SEARCH_PATH, args=payload, agent=_BROWSERS[1])
            return self.sqli(request, region, reached=True)
        if kind == "blocked":
            request = self._request(ATTACKER_IP, "/products", args="id=1'%20OR%20'1'='1", agent=_BROWSERS[1])
            return self.sqli(request, region, reached=False)
        request = self._request(ATTACKER_IP, self._page(), agent=_BROWSERS[1])
        return self.record(request, region)


def day_records(plan: DayPlan, hour: int, *, seed: int = 21) -> Iterator[DayRecord]:
    """One hour of the day's records in time order, each tagged with its kind."""
    rng = random.Random(seed * 1000 + hour)
    maker = _Hour(rng, plan.start, hour)
    mix = plan.mix
    batch: list[DayRecord] = []
    for kind, count in (
        ("human", mix.human),
        ("verified_bot", mix.verified_bot),
        ("http_library", mix.http_library),
        ("upload", mix.upload),
        ("ip_reputation", mix.ip_reputation),
        ("geo_block", mix.geo_block),
    ):
        batch += [DayRecord(kind, getattr(maker, kind)()) for _ in range(count)]
    if hour in (plan.login_burst_hour, plan.login_burst_hour + 1):
        batch += [DayRecord("login_burst", maker.login_burst()) for _ in range(plan.login_burst_per_hour)]
    if hour == plan.scanner_hour:
        batch += [DayRecord("scanner", maker.scanner()) for _ in range(plan.scanner_requests)]
    if hour == plan.attacker_hour:
        for kind, count in (
            ("reached", plan.attacker_sqli_reached),
            ("blocked", plan.attacker_sqli_blocked),
            ("browsing", plan.attacker_browsing),
        ):
            batch += [DayRecord(f"attacker_{kind}", maker.attacker(kind)) for _ in range(count)]
    batch.sort(key=lambda r: r.record["timestamp"])
    yield from batch
