"""The deterministic severity floor (docs/architecture.md, "Severity").

``severity_floor(event)`` grades a normalized ``WafEvent`` from what the WAF itself
recorded: the terminating rule, every matched rule, the labels and the action. The
security analyst may raise the result, never lower it, so the floor must be cheap,
explainable and *total*: every possible ``WafEvent`` gets a grade and nothing raises.
The grades live in ``catalog.CLASSES`` (the README's severity table is tested against
it); the operator's own catalog file (``operator.py``) is consulted first.

Disposition: what happened to the request decides how a match is graded.

- ``BLOCK``                   -> blocked: it did not reach the application.
- ``ALLOW`` / ``COUNT``       -> reached: a match that was only counted (COUNT,
  EXCLUDED_AS_COUNT, or a CAPTCHA/CHALLENGE whose token was valid) reached the app.
- ``CAPTCHA`` / ``CHALLENGE`` -> interrupted: volumetric, bot and reputation matches
  grade 1 (that is what these soft mitigations are for); an attack-class match grades
  as blocked, because a payload stopped by an interstitial is still an attempt.
- anything else               -> unknown: graded as reached, the conservative choice.

Classification order for one matched rule (first hit wins):

0. the operator's catalog (a rule name, a name pattern, a label);
1. ``catalog.RULES``: managed rule-id prefixes, case- and separator-insensitive;
   ambiguous ids (``VolumetricIpHigh`` in ATP and ACFP) are scoped to their group;
2. ``catalog.CONDITION_TYPES``: match details of custom rules (SQL_INJECTION, XSS ...);
3. ``catalog.GROUPS``: the managed rule group when its inner rule is unknown;
4. name tokens of custom rules (``catalog.NAME_PATTERNS`` / ``NAME_WORDS``);
5. otherwise the documented ``unknown`` default (2 blocked / 3 reached).

An explicit allow rule (the terminating rule of a native log whose action is ALLOW, or
a rule named "allow..."/"allowlist"/"whitelist") is an operator decision, not a
detection: its name tokens are not trusted and non-attack classes grade 0. Labels are
graded by namespace; token, geo and informational labels never raise the floor. The
floor is the maximum over all findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from secops_core.contract import FloorReason, FloorSource, RuleMatch, SeverityFloorInfo, WafEvent
from secops_core.waf import catalog
from secops_core.waf.actions import COUNTED_ACTIONS, INTERSTITIAL_ACTIONS, REACHED_ACTIONS
from secops_core.waf.catalog import (
    ALLOW_WORDS,
    CLASSES,
    UNKNOWN,
    UNKNOWN_BLOCKED_SEVERITY,
    UNKNOWN_REACHED_SEVERITY,
    AttackClass,
)
from secops_core.waf.names import DEFAULT_ACTION_RULE, clean, group_name, is_default, is_label, key, words
from secops_core.waf.operator import OperatorCatalog, active_operator_catalog

__all__ = [
    "UNKNOWN_BLOCKED_SEVERITY",
    "UNKNOWN_REACHED_SEVERITY",
    "explain_floor",
    "informational_label",
    "severity_floor",
]

_REASON_NAME_CHARS = 120


@dataclass(frozen=True, slots=True)
class _Hit:
    """One class found for a rule or label, and what found it."""

    cls: str
    source: FloorSource
    matched: str
    entry: str | None = None


# ---- classification --------------------------------------------------------------------


def _rule_entry(rule_key: str, group_key: str, *, scoped_only: bool = False) -> catalog.RuleEntry | None:
    for entry in catalog.RULES:
        if not rule_key.startswith(entry.prefix) or rule_key.startswith(entry.unless):
            continue
        if entry.groups is None:
            if not scoped_only:
                return entry
            continue
        if group_key in entry.groups:
            return entry
        if not group_key and not entry.strict and not scoped_only:
            return entry
    return None


def name_classes(name: str) -> list[_Hit]:
    """Classes told by the tokens of a custom name (``ReactJSRCE_Custom`` -> rce)."""
    name_key = key(name)
    found = [
        _Hit(cls, "name", pattern.pattern)
        for pattern, cls in catalog.NAME_PATTERNS
        if pattern.search(name_key)
    ]
    found += [
        _Hit(catalog.NAME_WORDS[word], "name", word) for word in words(name) if word in catalog.NAME_WORDS
    ]
    unique: dict[str, _Hit] = {}
    for hit in found:
        unique.setdefault(hit.cls, hit)
    return list(unique.values())


def _classify(
    rule_id: str,
    group: str,
    condition_types: tuple[str, ...],
    *,
    use_names: bool,
    operator: OperatorCatalog,
) -> list[_Hit] | None:
    """Classes for one matched rule, or None when nothing recognizes it."""
    chosen = operator.for_rule(rule_id)
    if chosen is not None:
        return [_Hit(chosen.cls, "operator", f"{chosen.kind} {chosen.value}", chosen.where)]
    rule_key, group_key = key(rule_id), key(group_name(group) or "")
    entry = _rule_entry(rule_key, group_key) if rule_key else None
    if entry is not None:
        return [_Hit(entry.cls, "rule", rule_id)]
    by_condition = [
        _Hit(catalog.CONDITION_TYPES[key(ct)], "condition", ct)
        for ct in condition_types
        if key(ct) in catalog.CONDITION_TYPES
    ]
    if by_condition:
        return list({hit.cls: hit for hit in reversed(by_condition)}.values())[::-1]
    for candidate, shown in ((group_key, group), (key(group_name(rule_id) or ""), rule_id)):
        if candidate in catalog.GROUPS:
            return [_Hit(catalog.GROUPS[candidate], "group", shown)]
    if use_names:
        by_name = name_classes(rule_id) or name_classes(group)
        if by_name:
            return by_name
    return None


def _classify_label(label: str, operator: OperatorCatalog) -> list[_Hit]:
    """Classes for a label; [] when it is informational or says nothing we know."""
    chosen = operator.for_label(label)
    if chosen is not None:
        return [_Hit(chosen.cls, "operator", f"label {chosen.value}", chosen.where)]
    parts = label.split(":")
    lowered = [part.lower() for part in parts]
    if len(parts) < 2 or lowered[0] != "awswaf":
        return name_classes(parts[-1])
    if lowered[1] in {"clientip", "forwardedip"}:
        return []  # geo labels WAF adds to every request
    if lowered[1] != "managed":
        # awswaf:<account>:webacl|rulegroup:<name>:<label...>: the custom rule that
        # added it is among the matches; only a telling name adds anything.
        return name_classes(":".join(parts[4:]) or parts[-1])
    if len(parts) < 4 or lowered[2] != "aws":
        # awswaf:managed:token|captcha|challenge:* are token state, not a match;
        # third-party vendors (awswaf:managed:<vendor>:...) by name only.
        if lowered[2:3] and lowered[2] in {"token", "captcha", "challenge"}:
            return []
        return name_classes(":".join(parts[3:]))
    namespace, rest = lowered[3], ":".join(parts[4:])
    rest_key = key(rest)
    group_key = catalog.LABEL_NAMESPACES.get(namespace)
    if group_key is None:
        return name_classes(rest)
    # A rule id of this very group (awswaf:managed:aws:acfp:AutomatedBrowser) says more
    # than the namespace's catch-all.
    patterns = [(prefix, cls) for ns, prefix, cls in catalog.LABEL_PATTERNS if ns == namespace]
    for prefix, cls in patterns:
        if prefix and rest_key.startswith(prefix):
            return [_Hit(cls, "label", label)] if cls else []
    scoped = _rule_entry(rest_key, group_key, scoped_only=True) if rest_key else None
    if scoped is not None:
        return [_Hit(scoped.cls, "label", label)]
    for prefix, cls in patterns:
        if not prefix:
            return [_Hit(cls, "label", label)] if cls else []
    entry = _rule_entry(rest_key, group_key) if rest_key else None
    if entry is not None:
        return [_Hit(entry.cls, "label", label)]
    return [_Hit(catalog.GROUPS[group_key], "label", label)]


def informational_label(label: str, operator: OperatorCatalog | None = None) -> bool:
    """True when ``label`` alone is no finding: geo, token, a verified bot's identity, a
    namespace or name the catalog does not know, or an operator label of class ``none``."""
    operator = active_operator_catalog() if operator is None else operator
    return all(hit.cls == "none" for hit in _classify_label(clean(label), operator))


# ---- grading ---------------------------------------------------------------------------


class _Disposition(Enum):
    BLOCKED = "blocked"
    REACHED = "reached"
    INTERRUPTED = "interrupted"
    UNKNOWN = "unknown"


def _disposition(action: str) -> _Disposition:
    if action == "BLOCK":
        return _Disposition.BLOCKED
    if action in REACHED_ACTIONS:
        return _Disposition.REACHED
    if action in INTERSTITIAL_ACTIONS:
        return _Disposition.INTERRUPTED
    return _Disposition.UNKNOWN


def _grade(cls: AttackClass, disposition: _Disposition, match_action: str) -> int:
    if disposition is _Disposition.BLOCKED:
        return cls.blocked_grade
    if disposition is _Disposition.INTERRUPTED:
        return cls.blocked_grade if cls.attack else min(cls.blocked_grade, 1)
    # Reached (or an unknown action, graded as reached). A non-terminating CAPTCHA or
    # CHALLENGE match means the client held a valid token: it proved itself, which
    # answers a bot/volumetric concern but not an injected payload.
    if match_action in INTERSTITIAL_ACTIONS and not cls.attack:
        return min(cls.reached_grade, 1)
    return cls.reached_grade


def _outcome(disposition: _Disposition, action: str, match_action: str) -> str:
    if disposition is _Disposition.BLOCKED:
        return "blocked, so it did not reach the application"
    if disposition is _Disposition.INTERRUPTED:
        return f"answered with a {action} instead, so it did not reach the application"
    if disposition is _Disposition.UNKNOWN:
        return (
            f"handled with the unrecognized action {clean(action, 40)!r}, so it is "
            "treated as having reached the application"
        )
    if match_action in COUNTED_ACTIONS:
        return "allowed (counted), so it reached the application"
    if match_action in INTERSTITIAL_ACTIONS:
        return f"allowed after a valid {match_action} token, so it reached the application"
    return "allowed, so it reached the application"


@dataclass(frozen=True, slots=True)
class _Finding:
    severity: int
    attack_class: str
    reason: str
    rule: str
    # Tie-break at equal severity: a recognized rule explains more than a label, a label
    # more than the unknown default, and that more than the bare action.
    rank: int
    source: FloorSource
    matched: str
    entry: str | None = None


def _short(text: str) -> str:
    return clean(text, _REASON_NAME_CHARS)


def _by(hit: _Hit) -> str:
    """How a hit was found, in the reason's words."""
    if hit.source == "operator":
        return f" (operator catalog {hit.entry}: {hit.matched})"
    if hit.source == "name":
        return f" (by its name: {hit.matched})"
    if hit.source == "condition":
        return f" (match type {hit.matched})"
    if hit.source == "group":
        return " (by its managed rule group)"
    return ""


@dataclass(frozen=True, slots=True)
class _Signal:
    """One matched rule, wherever the event recorded it."""

    rule_id: str
    group: str
    action: str
    condition_types: tuple[str, ...]
    explicit_allow: bool


def _rule_findings(
    signal: _Signal, disposition: _Disposition, action: str, operator: OperatorCatalog
) -> list[_Finding]:
    group = group_name(signal.group) or ""
    rule_id = clean(signal.rule_id)
    rule = clean(f"{group}:{rule_id}" if group else rule_id)
    shown = _short(f"{group}/{rule_id}" if group else rule_id)
    outcome = _outcome(disposition, action, signal.action)
    hits = _classify(
        rule_id, group, signal.condition_types, use_names=not signal.explicit_allow, operator=operator
    )
    if hits is None:
        if signal.explicit_allow:
            return [
                _Finding(
                    0,
                    "allow_rule",
                    f"Allow rule {shown} explicitly allowed the request, an allow-list "
                    "decision rather than a detection",
                    rule,
                    1,
                    "rule",
                    rule_id,
                )
            ]
        return [
            _Finding(
                _grade(UNKNOWN, disposition, signal.action),
                UNKNOWN.name,
                f"Unrecognized rule {shown} matched and the request was {outcome}; "
                f"unrecognized rules get a floor of {UNKNOWN_BLOCKED_SEVERITY} when "
                f"blocked and {UNKNOWN_REACHED_SEVERITY} when they reach the application",
                rule,
                1,
                "default",
                rule_id,
            )
        ]
    findings = []
    for hit in hits:
        cls = CLASSES[hit.cls]
        severity = _grade(cls, disposition, signal.action)
        reason = f"{cls.title} rule {shown}{_by(hit)} matched and the request was {outcome}"
        if signal.explicit_allow and not cls.attack and hit.source != "operator":
            severity = 0
            reason = (
                f"{cls.title} rule {shown} explicitly allowed the request, an allow-list "
                "decision rather than a detection"
            )
        matched = hit.matched if hit.source in {"operator", "name", "condition"} else rule_id
        findings.append(_Finding(severity, cls.name, reason, rule, 3, hit.source, matched, hit.entry))
    return findings


def _label_findings(
    label: str, disposition: _Disposition, action: str, operator: OperatorCatalog
) -> list[_Finding]:
    cleaned = clean(label)
    outcome = _outcome(disposition, action, "")
    findings = []
    for hit in _classify_label(cleaned, operator):
        cls = CLASSES[hit.cls]
        source: FloorSource = "operator" if hit.source == "operator" else "label"
        matched = hit.matched if hit.source == "operator" else cleaned
        findings.append(
            _Finding(
                _grade(cls, disposition, ""),
                cls.name,
                f"{cls.title} label {_short(cleaned)}{_by(hit)} was present and the request was {outcome}",
                cleaned,
                2,
                source,
                matched,
                hit.entry,
            )
        )
    return findings


def _signals(event: WafEvent, action: str, *, rate_based: bool) -> list[_Signal]:
    rule_name = clean(event.rule_name)
    group = clean(event.rule_group)
    signals: list[_Signal] = []
    # The terminating rule usually appears among the matches too, with its group and
    # match details: that record speaks for it. A rate-based terminating rule is graded
    # as such by the caller; its free-form name must not add an "unrecognized rule"
    # grade on top.
    logged = any(match.terminating and key(clean(match.rule_id)) == key(rule_name) for match in event.matches)
    if not (logged or rate_based or is_default(rule_name) or is_label(rule_name)):
        if ":" in rule_name and not group:
            # "AWSManagedRulesSQLiRuleSet:SQLi_BODY" (the shape of our own ``rule``).
            group, rule_name = rule_name.rsplit(":", 1)
        tokens = words(rule_name)
        named_allow = bool(tokens) and tokens[0] in ALLOW_WORDS
        # In a native log a terminating rule is never a COUNT; with ALLOW it is an
        # allow rule. The simplified shape does not say, so only its name can.
        native_allow = event.source_format == "waf_log"
        signals.append(
            _Signal(
                rule_name,
                group,
                action,
                (),
                explicit_allow=action == "ALLOW" and (native_allow or named_allow),
            )
        )
    for match in event.matches:
        signals.append(_match_signal(match, event.rule_group if match.terminating else None))
    return signals


def _match_signal(match: RuleMatch, fallback_group: str | None) -> _Signal:
    match_action = clean(match.action, 40).upper()
    tokens = words(clean(match.rule_id))
    allow_rule = match_action == "ALLOW" and (
        bool(match.terminating) or (bool(tokens) and tokens[0] in ALLOW_WORDS)
    )
    return _Signal(
        clean(match.rule_id),
        clean(match.rule_group or fallback_group),
        match_action,
        tuple(clean(ct, 64) for ct in (match.condition_types or ())),
        explicit_allow=allow_rule,
    )


def severity_floor(event: WafEvent, operator: OperatorCatalog | None = None) -> SeverityFloorInfo:
    """Grade a WAF event from its rules, labels and action; total and side-effect free.

    Every matched rule and every label is graded with the request's disposition, and
    the highest grade wins; ``floor_reason`` says which rule, label or pattern decided.
    ``operator`` defaults to the catalog ``SECOPS_RULES_CATALOG`` names (loaded once).
    """
    return explain_floor(event, operator)[0]


def explain_floor(
    event: WafEvent, operator: OperatorCatalog | None = None
) -> tuple[SeverityFloorInfo, list[SeverityFloorInfo]]:
    """The floor and every finding that competed for it, highest first."""
    operator = active_operator_catalog() if operator is None else operator
    action = clean(event.action, 40).upper()
    disposition = _disposition(action)
    rule_name = clean(event.rule_name) or DEFAULT_ACTION_RULE
    findings: list[_Finding] = []

    rate_based = clean(event.terminating_rule_type, 40).upper() == "RATE_BASED"
    if rate_based:
        rate = CLASSES["rate_limit"]
        findings.append(
            _Finding(
                _grade(rate, disposition, action),
                rate.name,
                f"Rate-based rule {_short(rule_name)} matched and the request was "
                f"{_outcome(disposition, action, action)}",
                rule_name,
                3,
                "rate_based",
                rule_name,
            )
        )
    for signal in _signals(event, action, rate_based=rate_based):
        findings.extend(_rule_findings(signal, disposition, action, operator))
    # A simplified event may name the deciding label instead of a rule.
    labels = (rule_name, *event.labels) if is_label(rule_name) else event.labels
    for label in labels:
        findings.extend(_label_findings(label, disposition, action, operator))

    if disposition is _Disposition.INTERRUPTED:
        findings.append(
            _Finding(
                1,
                "challenge",
                f"The request was answered with a {action} by rule {_short(rule_name)}, "
                "so it did not reach the application",
                rule_name,
                0,
                "action",
                action,
            )
        )
    elif not findings or is_default(rule_name):
        findings.append(_baseline(disposition, action, rule_name))

    ranked = sorted(enumerate(findings), key=lambda item: (-item[1].severity, -item[1].rank, item[0]))
    infos = [_info(finding, disposition, rule_name) for _, finding in ranked]
    return infos[0], infos


def _info(finding: _Finding, disposition: _Disposition, rule_name: str) -> SeverityFloorInfo:
    return SeverityFloorInfo(
        severity=max(0, min(5, finding.severity)),
        attack_class=finding.attack_class,
        reason=finding.reason + ".",
        rule=finding.rule or rule_name,
        floor_reason=FloorReason(
            source=finding.source,
            matched=clean(finding.matched) or rule_name,
            attack_class=finding.attack_class,
            disposition=disposition.value,
            entry=finding.entry,
        ),
    )


def _baseline(disposition: _Disposition, action: str, rule: str) -> _Finding:
    if disposition is _Disposition.REACHED:
        reason = "No rule matched and the web ACL's default action allowed the request"
        return _Finding(0, "none", reason, rule, 0, "action", action)
    if disposition is _Disposition.BLOCKED:
        reason = (
            "No rule matched and the web ACL's default action blocked the request, so it "
            "did not reach the application"
        )
        return _Finding(1, "default_block", reason, rule, 0, "action", action)
    reason = f"No rule matched and the action {clean(action, 40)!r} is not recognized"
    return _Finding(1, "unknown_action", reason, rule, 0, "action", action)
