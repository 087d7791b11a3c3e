"""An incident as an AWS Security Finding Format (ASFF) finding (pure).

One incident is one finding: its ``Id`` is derived from the incident id, so every
milestone re-imports the same finding with a new ``UpdatedAt`` and the grown totals,
and Security Hub shows one row per attack, not one per event.

Times: ``CreatedAt`` is when the worker opened the incident, and the write that creates
the finding has ``UpdatedAt`` equal to it. Every later write has ``UpdatedAt`` = the
time of that write, strictly later than every earlier write of the same finding, even
from a replica whose clock is behind (Security Hub ignores an import whose ``UpdatedAt``
is not later than the stored one). The events' own times (attacker-influenced, maybe in
the future) go to ``FirstObservedAt`` / ``LastObservedAt`` only. Every string that an
attacker or a model wrote (URIs, rule names of custom rules, the Host header, the
model's analysis) is cleaned to one line without control or invisible characters and
cut to the ASFF limit of its field (docs/architecture.md, "Untrusted text").

Severity, from our 0-5 (``Normalized`` is deprecated in ASFF but still accepted; it is
set inside the range Security Hub maps to the same label):

==== ============= ==========
ours ``Label``     Normalized
==== ============= ==========
0    INFORMATIONAL 0
1    LOW           10
2    LOW           30
3    MEDIUM        50
4    HIGH          75
5    CRITICAL      95
==== ============= ==========
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from secops_core.contract import Analysis, WafEvent
from secops_core.waf.catalog import CLASSES
from worker.incidents.grouping import ANY_SOURCE
from worker.incidents.keys import OTHER
from worker.incidents.milestones import OPENED, Milestone
from worker.incidents.records import IncidentRecord
from worker.notify.sanitize import clean

if TYPE_CHECKING:
    from types_boto3_securityhub.type_defs import NoteUpdateTypeDef

SCHEMA_VERSION = "2018-10-08"
PRODUCT_NAME = "secops-worker"

# ASFF limits (AwsSecurityFinding in the Security Hub API reference).
TITLE_MAX = 256
DESCRIPTION_MAX = 1024
ID_MAX = 512
TYPE_MAX = 128
PRODUCT_FIELDS_MAX = 50
PRODUCT_FIELD_KEY_MAX = 127
PRODUCT_FIELD_VALUE_MAX = 2048
RESOURCE_ID_MAX = 512
OTHER_DETAIL_VALUE_MAX = 1023
NOTE_MAX = 512
# A host name as the event carried it (the attacker's Host header): only an upper bound
# for the work on it; each field it reaches is cut to that field's own limit.
HOST_MAX = 253
# The partitions a Resource may name (the ``Partition`` enum of the Security Hub API).
PARTITIONS = frozenset({"aws", "aws-cn", "aws-us-gov", "aws-us-iso", "aws-us-iso-b"})
# ``UpdatedAt`` of the n-th write of a finding is at least this much later per write
# than every earlier write the incident recorded (ASFF timestamps have milliseconds).
_WRITE_STEP = timedelta(milliseconds=1)
# Security Hub adds its own aws/securityhub/* product fields to the same map of 50.
_OWN_PRODUCT_FIELDS_MAX = PRODUCT_FIELDS_MAX - 10
# How many sample URIs, rules and countries are listed one per product field.
SAMPLES = 5
_SAMPLE_VALUE_MAX = 512

SeverityLabel = Literal["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
SEVERITY: dict[int, tuple[SeverityLabel, int]] = {
    0: ("INFORMATIONAL", 0),
    1: ("LOW", 10),
    2: ("LOW", 30),
    3: ("MEDIUM", 50),
    4: ("HIGH", 75),
    5: ("CRITICAL", 95),
}

# ASFF Types (namespace/category) per catalog class, most telling first; the first gets
# the class's title as its classifier. Namespaces and categories are the ASFF taxonomy's
# (TTPs follow MITRE ATT&CK tactics); a test keeps every catalog class mapped.
_INITIAL = "TTPs/Initial Access"
_EXECUTION = "TTPs/Execution"
_DISCOVERY = "TTPs/Discovery"
_CREDENTIALS = "TTPs/Credential Access"
_EVASION = "TTPs/Defense Evasion"
_EXPOSURE = "Effects/Data Exposure"
_EXFILTRATION = "Effects/Data Exfiltration"
_DOS = "Effects/Denial of Service"
_CONSUMPTION = "Effects/Resource Consumption"
_APPLICATION = "Unusual Behaviors/Application"
_IP = "Unusual Behaviors/IP address"
_USER = "Unusual Behaviors/User"
_FLOW = "Unusual Behaviors/Network Flow"
_RCE = (_INITIAL, _EXECUTION)

CLASS_TYPES: dict[str, tuple[str, ...]] = {
    "sqli": (_INITIAL, _EXFILTRATION),
    "xss": (_INITIAL, _EXPOSURE),
    "lfi": (_INITIAL, _EXPOSURE),
    "rfi": (_INITIAL, _EXECUTION),
    "path_traversal": (_INITIAL, _EXPOSURE),
    "ssrf": (_INITIAL, _CREDENTIALS, _EXPOSURE),
    "xxe": (_INITIAL, _EXPOSURE),
    "ssti": _RCE,
    "sensitive_file_access": (_DISCOVERY, _EXPOSURE),
    "host_header": (_INITIAL,),
    "webdav_probe": (_DISCOVERY,),
    "exploitable_path": (_DISCOVERY,),
    "admin_access": (_INITIAL, _DISCOVERY),
    "known_bad_input": (_INITIAL,),
    "common_web_attack": (_INITIAL,),
    "wordpress_path": (_DISCOVERY,),
    "wordpress_attack": (_INITIAL,),
    "php_attack": (_INITIAL,),
    "log4j": _RCE,
    "java_deserialization": _RCE,
    "spring4shell": _RCE,
    "command_injection": _RCE,
    "rce": _RCE,
    "php_exploit": _RCE,
    "wordpress_exploit": _RCE,
    "credential_stuffing": (_CREDENTIALS,),
    "compromised_credential": (_CREDENTIALS, _INITIAL),
    "account_takeover": (_CREDENTIALS,),
    "account_creation_fraud": (_USER,),
    "ddos": (_DOS, _CONSUMPTION),
    "bad_bot_user_agent": (_APPLICATION, _DISCOVERY),
    "no_user_agent": (_APPLICATION,),
    "size_restriction": (_APPLICATION,),
    "ip_reputation": (_IP,),
    "anonymous_ip": (_IP, _EVASION),
    "rate_limit": (_FLOW, _CONSUMPTION),
    "ip_match": (_IP,),
    "geo_match": (_IP,),
    "ddos_suspect": (_FLOW, _DOS),
    "login_anomaly": (_USER, _CREDENTIALS),
    "bot_targeted": (_APPLICATION,),
    "bot": (_APPLICATION,),
    "bot_signal": (_APPLICATION,),
    "challenge": (_APPLICATION,),
    "unsupported_request": (_APPLICATION,),
    "default_block": (_APPLICATION,),
    "unknown_action": (_APPLICATION,),
    "none": (_APPLICATION,),
    "unknown": (_APPLICATION,),
    "allow_rule": (_APPLICATION,),
}
# A class the catalog does not know (a model's own words): an unusual application request.
FALLBACK_TYPES: tuple[str, ...] = (_APPLICATION,)

_GENERATOR_UNSAFE = re.compile(r"[^a-z0-9_.:-]+")
_COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")
_WAFV2_ACL = re.compile(r"^arn:aws[a-z-]*:wafv2:([a-z0-9-]+):\d{12}:(global|regional)/webacl/[^\s]+$")
_WAF_CLASSIC_ACL = re.compile(r"^arn:aws[a-z-]*:(waf|waf-regional):([a-z0-9-]*):\d{12}:webacl/[^\s]+$")


@dataclass(frozen=True, slots=True)
class FindingContext:
    """Where findings go: the account's default product for custom integrations."""

    product_arn: str
    account_id: str
    partition: str
    region: str


def default_product_arn(partition: str, region: str, account_id: str) -> str:
    """The ARN of the account's default product, the one custom integrations import to."""
    return f"arn:{partition}:securityhub:{region}:{account_id}:product/{account_id}/default"


def finding_id(incident: IncidentRecord) -> str:
    """The finding's id: one per incident, stable across its milestones."""
    return finding_id_of(incident.group_hash, incident.seq)


def finding_id_of(group_hash: str, seq: int) -> str:
    """The finding id of the ``seq``-th incident of a group (a block's note finds it)."""
    return f"secops-worker/incidents/{group_hash}/{seq}"


def severity(rating: int) -> tuple[SeverityLabel, int]:
    """Our 0-5 as an ASFF label and normalized score (out of range is clamped)."""
    return SEVERITY[min(5, max(0, int(rating)))]


def class_title(attack_class: str) -> str:
    """The operator's name of a class; a class the catalog lacks is shown cleaned."""
    known = CLASSES.get(attack_class)
    return known.title if known else (_text(attack_class, 64) or "Unclassified")


def finding_types(attack_class: str) -> list[str]:
    """ASFF ``Types`` of an attack class: the first with the class title as classifier."""
    paths = CLASS_TYPES.get(attack_class, FALLBACK_TYPES)
    classifier = class_title(attack_class).replace("/", " ")
    first = f"{paths[0]}/{classifier}"[:TYPE_MAX]
    return [first, *paths[1:]]


def generator_id(attack_class: str) -> str:
    """``secops-worker/<class>``: what Security Hub groups findings of one detector by."""
    cleaned = _GENERATOR_UNSAFE.sub("_", attack_class.lower())[:64].strip("_")
    return f"secops-worker/{cleaned or 'unknown'}"


def timestamp(at: datetime) -> str:
    """An ASFF timestamp: UTC, milliseconds, ``Z``."""
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_times(incident: IncidentRecord, now: datetime) -> tuple[datetime, datetime]:
    """``CreatedAt`` and ``UpdatedAt`` of the finding's write at ``now``.

    ``CreatedAt`` is when the worker opened the incident (stable across writes). Until a
    Security Hub write is recorded on the incident, this write creates the finding and
    ``UpdatedAt`` = ``CreatedAt``. After k recorded writes, ``UpdatedAt`` is ``now`` or,
    when this clock is behind, the latest of ``CreatedAt`` and the recorded writes plus
    k milliseconds. Each earlier write sent either its own ``now`` (before its recording
    time, on the same clock) or such a base plus fewer milliseconds, so the new one is
    strictly later than all of them. Two milestones of one incident published at the
    same moment by two replicas see neither's record; the later import of the two may
    then be ignored, and the next milestone carries the totals again.
    """
    aware = now if now.tzinfo else now.replace(tzinfo=UTC)
    created = _parsed(incident.created_at) or min(incident.first_seen, aware)
    writes = [
        at
        for notice in incident.notices
        if any(c.channel == "securityhub" and c.ok for c in notice.channels)
        and (at := _parsed(notice.at)) is not None
    ]
    if not writes:
        return created, created
    return created, max(aware, max(created, *writes) + _WRITE_STEP * len(writes))


def _parsed(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_finding(
    incident: IncidentRecord,
    milestone: Milestone,
    context: FindingContext,
    *,
    now: datetime,
    event: WafEvent | None = None,
    analysis: Analysis | None = None,
) -> dict[str, Any]:
    """The ASFF finding for ``incident`` as it is at ``milestone``.

    ``Workflow`` is only sent when the incident opens: after a finding exists,
    ``BatchImportFindings`` may not change it (the customer's field, changed with
    ``BatchUpdateFindings``). ``Severity`` and ``Types`` go both top-level and in
    ``FindingProviderFields``, where a provider keeps them up to date.
    """
    label, normalized = severity(incident.max_severity)
    types = finding_types(incident.attack_class)
    created, updated = write_times(incident, now)
    finding: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(incident),
        "ProductArn": context.product_arn,
        "ProductName": PRODUCT_NAME,
        "GeneratorId": generator_id(incident.attack_class),
        "AwsAccountId": context.account_id,
        "Types": types,
        "CreatedAt": timestamp(created),
        "UpdatedAt": timestamp(updated),
        "FirstObservedAt": timestamp(incident.first_seen),
        "LastObservedAt": timestamp(incident.last_seen),
        "Severity": {"Label": label, "Normalized": normalized, "Original": str(incident.max_severity)},
        "FindingProviderFields": {
            "Severity": {"Label": label, "Original": str(incident.max_severity)},
            "Types": types,
        },
        "Title": title(incident, event),
        "Description": description(incident, milestone, analysis),
        "Resources": resources(incident, context, event),
        "ProductFields": product_fields(incident, milestone, event),
        "RecordState": "ACTIVE",
    }
    finding["Action"] = action_details(incident, event)
    if milestone.id == OPENED.id:
        finding["Workflow"] = {"Status": "NEW"}
    return finding


def title(incident: IncidentRecord, event: WafEvent | None = None) -> str:
    """``SQL injection from 203.0.113.7 on shop.example.com``: stable as the incident grows."""
    host = _host(incident, event)
    text = f"{class_title(incident.attack_class)} from {_source(incident)}"
    if host:
        text += f" on {_text(host, 96)}"
    return _text(text, TITLE_MAX) or "SecOps incident"


def description(incident: IncidentRecord, milestone: Milestone, analysis: Analysis | None = None) -> str:
    """What happened, in at most 1024 characters and without links (ASFF ``SourceUrl``
    is left out on purpose: a URI an attacker wrote is never offered as a link).
    """
    reached = (
        f"{incident.reached_app} reached the application"
        if incident.reached_app
        else "all blocked or challenged"
    )
    parts = [
        f"{class_title(incident.attack_class)} incident from {_source(incident)}:"
        f" {incident.count} event(s), {reached}, highest severity {incident.max_severity}/5,"
        f" {timestamp(incident.first_seen)} to {timestamp(incident.last_seen)}.",
        f"Latest milestone: {_text(milestone.summary, 160)}.",
    ]
    uris = _top(incident.uri_templates, 3)
    if uris:
        parts.append("Top URIs: " + ", ".join(f"{_text(u, 120)} ({n})" for u, n in uris) + ".")
    rules = _top(incident.rules, 3)
    if rules:
        parts.append("Rules: " + ", ".join(f"{_text(r, 80)} ({n})" for r, n in rules) + ".")
    if analysis is not None and analysis.security_analysis:
        parts.append(
            f"Analysis ({_text(analysis.analyzed_by, 64)}): {_text(analysis.security_analysis, 600)}"
        )
    parts.append(f"Incident {incident.id} (secops incidents show).")
    return _text(" ".join(parts), DESCRIPTION_MAX) or "SecOps incident"


def resources(
    incident: IncidentRecord, context: FindingContext, event: WafEvent | None = None
) -> list[dict[str, Any]]:
    """The web ACL when the milestone's event names it, and the targeted host (or the
    incident's target) as an ``Other`` resource; at least one resource, as ASFF requires.
    """
    found: list[dict[str, Any]] = []
    acl = _text(event.web_acl, RESOURCE_ID_MAX) if event is not None and event.web_acl else ""
    if acl:
        found.append(_web_acl(acl, context))
    host = _host(incident, event)
    target = _text(host or incident.target or "", RESOURCE_ID_MAX)
    details = {"kind": "web application" if target else "unknown target"}
    if incident.target:
        details["target"] = _text(incident.target, OTHER_DETAIL_VALUE_MAX)
    found.append(
        _resource(
            "Other", target or f"secops-worker/{incident.id}"[:RESOURCE_ID_MAX], context, details=details
        )
    )
    return found


def _resource(
    kind: str, ident: str, context: FindingContext, *, region: str = "", details: dict[str, str] | None = None
) -> dict[str, Any]:
    """One ``Resources`` entry; ``Partition`` only when it is one the API enumerates (a
    newer partition than the model's is left out rather than refused)."""
    resource: dict[str, Any] = {"Type": kind, "Id": ident}
    if context.partition in PARTITIONS:
        resource["Partition"] = context.partition
    resource["Region"] = region or context.region
    if details is not None:
        resource["Details"] = {"Other": details}
    return resource


def _web_acl(acl: str, context: FindingContext) -> dict[str, Any]:
    wafv2 = _WAFV2_ACL.match(acl)
    if wafv2:
        # CloudFront web ACLs are global; their ARN says us-east-1.
        return _resource("AwsWafv2WebAcl", acl, context, region=wafv2.group(1))
    classic = _WAF_CLASSIC_ACL.match(acl)
    if classic:
        kind = "AwsWafRegionalWebAcl" if classic.group(1) == "waf-regional" else "AwsWafWebAcl"
        return _resource(kind, acl, context, region=classic.group(2))
    # A name or id, not an ARN (simplified events): still worth showing, as Other.
    return _resource("Other", acl, context, details={"kind": "web ACL"})


def action_details(incident: IncidentRecord, event: WafEvent | None = None) -> dict[str, Any]:
    """``Action``: an inbound connection from the source (its IPv4 address and country;
    an IPv6 source is in the product fields), and whether every request was blocked.

    The retired ``Network`` object is not sent: what it held is here, and its
    ``DestinationDomain`` (128 characters) would carry the attacker's Host header.
    """
    address = _source_address(incident, event)
    remote: dict[str, Any] = {}
    if address is not None and address.version == 4:
        remote["IpAddressV4"] = str(address)
    country = _country(incident, event)
    if country:
        remote["Country"] = {"CountryCode": country}
    connection: dict[str, Any] = {
        "ConnectionDirection": "IN",
        "Protocol": "TCP",
        "Blocked": incident.reached_app == 0,
    }
    if remote:
        connection["RemoteIpDetails"] = remote
    return {"ActionType": "NETWORK_CONNECTION", "NetworkConnectionAction": connection}


def product_fields(
    incident: IncidentRecord, milestone: Milestone, event: WafEvent | None = None
) -> dict[str, str]:
    """The incident's facts as ASFF ``ProductFields``: a flat string map of at most 50
    entries (Security Hub adds some of its own), keys under 128 characters, values at
    most 2048. Sample URIs, rules and countries come one per field, with their counts.
    """
    fields: dict[str, str] = {
        "secops/incident_id": incident.id,
        "secops/group": incident.group.text,
        "secops/attack_class": incident.attack_class,
        "secops/status": incident.status,
        "secops/milestone": milestone.id,
        "secops/milestone_summary": milestone.summary,
        "secops/event_count": str(incident.count),
        "secops/reached_app_count": str(incident.reached_app),
        "secops/max_severity": str(incident.max_severity),
        "secops/first_seen": timestamp(incident.first_seen),
        "secops/last_seen": timestamp(incident.last_seen),
        "secops/distinct_sources": _distinct(incident.source_ips),
    }
    if event is not None:
        fields["secops/latest_event"] = event.event_key
    address = _source_address(incident, event)
    if address is not None:
        # The only place an IPv6 source appears: RemoteIpDetails holds IPv4 addresses.
        fields["secops/source_ip"] = str(address)
    for name, counts in (
        ("uri", incident.uri_templates),
        ("rule", incident.rules),
        ("country", incident.countries),
        ("source_ip", incident.source_ips),
    ):
        for index, (value, count) in enumerate(_top(counts, SAMPLES), start=1):
            fields[f"secops/{name}_{index}"] = f"{_text(value, _SAMPLE_VALUE_MAX)} ({count})"
    cleaned: dict[str, str] = {}
    for key, value in fields.items():
        text = _text(value, PRODUCT_FIELD_VALUE_MAX)
        if text and len(cleaned) < _OWN_PRODUCT_FIELDS_MAX:
            cleaned[key[:PRODUCT_FIELD_KEY_MAX]] = text
    return cleaned


def resolution_note(incident: IncidentRecord) -> NoteUpdateTypeDef:
    """The ``Note`` of ``BatchUpdateFindings`` when an operator resolves the incident:
    who, why, and the final totals (the finding's own fields keep the last milestone's).
    """
    change = next((c for c in reversed(incident.status_history) if c.status == "resolved"), None)
    by = _text(change.by if change else "", 128) or "secops"
    why = _text(change.note if change else "", 300)
    text = (
        f"Resolved in secops-worker by {by}"
        + (f": {why}" if why else "")
        + (f". Final: {incident.count} event(s), last seen {timestamp(incident.last_seen)}.")
    )
    return {
        "Text": _text(text, NOTE_MAX) or "Resolved in secops-worker",
        "UpdatedBy": f"secops-worker/{by}"[:NOTE_MAX],
    }


def _text(value: object, limit: int) -> str:
    return clean(value, limit)


def _top(counts: Mapping[str, int], n: int) -> list[tuple[str, int]]:
    """The ``n`` largest entries of a count map, the folded rest (OTHER) last if at all."""
    ranked = sorted(((k, v) for k, v in counts.items() if k != OTHER), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:n]


def _distinct(counts: Mapping[str, int]) -> str:
    """How many distinct keys a count map saw: ``20+`` once some were folded into OTHER."""
    named = sum(1 for k in counts if k != OTHER)
    return f"{named}+" if OTHER in counts else str(named)


def _host(incident: IncidentRecord, event: WafEvent | None) -> str:
    if event is not None and event.host:
        return _text(event.host.strip().lower(), HOST_MAX)
    # A `signature` target is "host uri-template", or only the template without a host.
    head = (incident.target or "").split(" ", 1)[0]
    return _text(head, HOST_MAX) if head and "/" not in head else ""


def _source(incident: IncidentRecord) -> str:
    if incident.source == ANY_SOURCE:
        return "many sources"
    return _text(incident.source, 64) or "an unknown source"


def _source_address(
    incident: IncidentRecord, event: WafEvent | None
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The source IP: the event's, the incident's own (grouped by source), or its most
    frequent one (a network or a distributed attack).
    """
    candidates = [event.source_ip] if event is not None else []
    candidates.append(incident.source)
    candidates.extend(k for k, _ in _top(incident.source_ips, 1))
    for candidate in candidates:
        try:
            return ipaddress.ip_address(candidate.strip())
        except ValueError:
            continue
    return None


def _country(incident: IncidentRecord, event: WafEvent | None) -> str | None:
    candidates = [event.country] if event is not None and event.country else []
    candidates.extend(k for k, _ in _top(incident.countries, len(incident.countries)))
    for candidate in candidates:
        code = (candidate or "").strip().upper()
        if _COUNTRY_CODE.match(code):
            return code
    return None
