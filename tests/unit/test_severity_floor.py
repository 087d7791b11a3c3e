"""The deterministic severity floor (docs/architecture.md, "Severity"), table by table.

Rule ids and label spellings are the ones AWS documents for its managed rule groups;
custom rule names are the kinds the original system's simplified events carried.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secops_core.contract import RuleMatch, SeverityFloorInfo, WafEvent
from secops_core.limits import MAX_ID_CHARS
from secops_core.waf.floor import (
    UNKNOWN_BLOCKED_SEVERITY,
    UNKNOWN_REACHED_SEVERITY,
    severity_floor,
)

CRS = "AWSManagedRulesCommonRuleSet"
KBI = "AWSManagedRulesKnownBadInputsRuleSet"
SQLI = "AWSManagedRulesSQLiRuleSet"
LINUX = "AWSManagedRulesLinuxRuleSet"
UNIX = "AWSManagedRulesUnixRuleSet"
WINDOWS = "AWSManagedRulesWindowsRuleSet"
PHP = "AWSManagedRulesPHPRuleSet"
WORDPRESS = "AWSManagedRulesWordPressRuleSet"
ADMIN = "AWSManagedRulesAdminProtectionRuleSet"
IP_REPUTATION = "AWSManagedRulesAmazonIpReputationList"
ANONYMOUS = "AWSManagedRulesAnonymousIpList"
BOT = "AWSManagedRulesBotControlRuleSet"
ATP = "AWSManagedRulesATPRuleSet"
ACFP = "AWSManagedRulesACFPRuleSet"
ANTI_DDOS = "AWSManagedRulesAntiDDoSRuleSet"


def _event(
    action: str,
    rule_name: str = "Default_Action",
    *,
    rule_group: str | None = None,
    matches: tuple[RuleMatch, ...] = (),
    labels: tuple[str, ...] = (),
    source_format: str = "waf_log",
    terminating_rule_type: str | None = None,
) -> WafEvent:
    return WafEvent(
        event_key="evt#t",
        source_format=source_format,  # type: ignore[arg-type]
        timestamp=datetime.now(UTC),
        source_ip="203.0.113.7",
        uri="/",
        action=action,
        rule_name=rule_name,
        rule_group=rule_group,
        terminating_rule_type=terminating_rule_type,
        matches=matches,
        labels=labels,
    )


def _counted(rule_id: str, group: str | None, action: str = "COUNT", **kw: object) -> RuleMatch:
    return RuleMatch(rule_id=rule_id, rule_group=group, action=action, **kw)  # type: ignore[arg-type]


def _assert_well_formed(floor: SeverityFloorInfo) -> None:
    assert 0 <= floor.severity <= 5
    assert floor.attack_class
    assert floor.attack_class == floor.attack_class.lower()
    assert " " not in floor.attack_class
    assert floor.reason.endswith(".")
    assert "\n" not in floor.reason
    assert floor.rule
    assert len(floor.rule) <= MAX_ID_CHARS


# ---- managed rules: blocked vs counted (COUNT, EXCLUDED_AS_COUNT) ----------------------

# (group, rule id, attack_class, severity when blocked, severity when only counted)
MANAGED_RULES: list[tuple[str, str, str, int, int]] = [
    # Core rule set
    (CRS, "CrossSiteScripting_BODY", "xss", 3, 4),
    (CRS, "CrossSiteScripting_QUERYARGUMENTS", "xss", 3, 4),
    (CRS, "CrossSiteScripting_COOKIE", "xss", 3, 4),
    (CRS, "CrossSiteScripting_URIPATH", "xss", 3, 4),
    (CRS, "GenericLFI_QUERYARGUMENTS", "lfi", 3, 4),
    (CRS, "GenericLFI_URIPATH", "lfi", 3, 4),
    (CRS, "GenericLFI_BODY", "lfi", 3, 4),
    (CRS, "GenericRFI_BODY", "rfi", 3, 4),
    (CRS, "GenericRFI_QUERYARGUMENTS", "rfi", 3, 4),
    (CRS, "GenericRFI_URIPATH", "rfi", 3, 4),
    (CRS, "EC2MetaDataSSRF_COOKIE", "ssrf", 3, 4),
    (CRS, "EC2MetaDataSSRF_BODY", "ssrf", 3, 4),
    (CRS, "EC2MetaDataSSRF_URIPATH", "ssrf", 3, 4),
    (CRS, "EC2MetaDataSSRF_QUERYARGUMENTS", "ssrf", 3, 4),
    (CRS, "RestrictedExtensions_URIPATH", "sensitive_file_access", 3, 4),
    (CRS, "RestrictedExtensions_QUERYARGUMENTS", "sensitive_file_access", 3, 4),
    (CRS, "NoUserAgent_HEADER", "no_user_agent", 2, 2),
    (CRS, "UserAgent_BadBots_HEADER", "bad_bot_user_agent", 2, 3),
    (CRS, "SizeRestrictions_BODY", "size_restriction", 2, 2),
    (CRS, "SizeRestrictions_QUERYSTRING", "size_restriction", 2, 2),
    (CRS, "SizeRestrictions_Cookie_HEADER", "size_restriction", 2, 2),
    (CRS, "SizeRestrictions_URIPATH", "size_restriction", 2, 2),
    # Known bad inputs
    (KBI, "JavaDeserializationRCE_HEADER", "java_deserialization", 3, 5),
    (KBI, "JavaDeserializationRCE_BODY", "java_deserialization", 3, 5),
    (KBI, "JavaDeserializationRCE_URIPATH", "java_deserialization", 3, 5),
    (KBI, "JavaDeserializationRCE_QUERYSTRING", "java_deserialization", 3, 5),
    (KBI, "Host_localhost_HEADER", "host_header", 3, 4),
    (KBI, "PROPFIND_METHOD", "webdav_probe", 3, 4),
    (KBI, "ExploitablePaths_URIPATH", "exploitable_path", 3, 4),
    (KBI, "Log4JRCE_QUERYSTRING", "log4j", 3, 5),
    (KBI, "Log4JRCE_HEADER", "log4j", 3, 5),
    (KBI, "Log4JRCE_BODY", "log4j", 3, 5),
    (KBI, "Log4JRCE_URIPATH", "log4j", 3, 5),
    # SQL database
    (SQLI, "SQLi_QUERYARGUMENTS", "sqli", 3, 4),
    (SQLI, "SQLiExtendedPatterns_QUERYARGUMENTS", "sqli", 3, 4),
    (SQLI, "SQLi_BODY", "sqli", 3, 4),
    (SQLI, "SQLiExtendedPatterns_BODY", "sqli", 3, 4),
    (SQLI, "SQLi_COOKIE", "sqli", 3, 4),
    (SQLI, "SQLi_URIPATH", "sqli", 3, 4),
    # Linux, POSIX, Windows
    (LINUX, "LFI_URIPATH", "lfi", 3, 4),
    (LINUX, "LFI_QUERYSTRING", "lfi", 3, 4),
    (LINUX, "LFI_HEADER", "lfi", 3, 4),
    (UNIX, "UNIXShellCommandsVariables_QUERYARGUMENTS", "command_injection", 3, 5),
    (UNIX, "UNIXShellCommandsVariables_BODY", "command_injection", 3, 5),
    (UNIX, "UNIXShellCommandsVariables_HEADER", "command_injection", 3, 5),
    (WINDOWS, "WindowsShellCommands_COOKIE", "command_injection", 3, 5),
    (WINDOWS, "WindowsShellCommands_QUERYARGUMENTS", "command_injection", 3, 5),
    (WINDOWS, "WindowsShellCommands_BODY", "command_injection", 3, 5),
    (WINDOWS, "PowerShellCommands_COOKIE", "command_injection", 3, 5),
    (WINDOWS, "PowerShellCommands_Set1_QUERYARGUMENTS", "command_injection", 3, 5),
    (WINDOWS, "PowerShellCommands_Set2_BODY", "command_injection", 3, 5),
    # PHP, WordPress
    (PHP, "PHPHighRiskMethodsVariables_HEADER", "php_exploit", 3, 5),
    (PHP, "PHPHighRiskMethodsVariables_QUERYSTRING", "php_exploit", 3, 5),
    (PHP, "PHPHighRiskMethodsVariables_BODY", "php_exploit", 3, 5),
    (WORDPRESS, "WordPressExploitableCommands_QUERYSTRING", "wordpress_exploit", 3, 5),
    (WORDPRESS, "WordPressExploitablePaths_URIPATH", "wordpress_path", 3, 4),
    # Admin protection
    (ADMIN, "AdminProtection_URIPATH", "admin_access", 3, 4),
    # Amazon IP reputation, anonymous IP
    (IP_REPUTATION, "AWSManagedIPReputationList", "ip_reputation", 2, 2),
    (IP_REPUTATION, "AWSManagedReconnaissanceList", "ip_reputation", 2, 2),
    (IP_REPUTATION, "AWSManagedIPDDoSList", "ip_reputation", 2, 2),
    (ANONYMOUS, "AnonymousIPList", "anonymous_ip", 2, 2),
    (ANONYMOUS, "HostingProviderIPList", "anonymous_ip", 2, 2),
    # Bot Control, common and targeted
    (BOT, "CategoryHttpLibrary", "bot", 1, 1),
    (BOT, "CategoryScrapingFramework", "bot", 1, 1),
    (BOT, "CategorySearchEngine", "bot", 1, 1),
    (BOT, "SignalNonBrowserUserAgent", "bot_signal", 1, 1),
    (BOT, "SignalAutomatedBrowser", "bot_signal", 1, 1),
    (BOT, "SignalKnownBotDataCenter", "bot_signal", 1, 1),
    (BOT, "TGT_VolumetricIpTokenAbsent", "bot_targeted", 1, 2),
    (BOT, "TGT_ML_CoordinatedActivityHigh", "bot_targeted", 1, 2),
    (BOT, "TGT_SignalBrowserInconsistency", "bot_targeted", 1, 2),
    # Account takeover prevention
    (ATP, "VolumetricIpHigh", "account_takeover", 2, 3),
    (ATP, "VolumetricSession", "account_takeover", 2, 3),
    (ATP, "VolumetricIpFailedLoginResponseHigh", "account_takeover", 2, 3),
    (ATP, "AttributeUsernameTraversal", "account_takeover", 2, 3),
    (ATP, "AttributePasswordTraversal", "account_takeover", 2, 3),
    (ATP, "AttributeLongSession", "account_takeover", 2, 3),
    (ATP, "AttributeCompromisedCredentials", "credential_stuffing", 3, 4),
    (ATP, "VolumetricSessionSuccessfulResponse", "credential_stuffing", 3, 4),
    (ATP, "VolumetricIpSuccessfulResponse", "credential_stuffing", 3, 4),
    (ATP, "SignalMissingCredential", "login_anomaly", 1, 2),
    (ATP, "TokenRejected", "login_anomaly", 1, 2),
    (ATP, "UnsupportedCognitoIDP", "unsupported_request", 1, 1),
    # Account creation fraud prevention
    (ACFP, "RiskScoreHigh", "account_creation_fraud", 2, 3),
    (ACFP, "SignalCredentialCompromised", "compromised_credential", 2, 3),
    (ACFP, "VolumetricIpHigh", "account_creation_fraud", 2, 3),
    (ACFP, "VolumetricSessionHigh", "account_creation_fraud", 2, 3),
    (ACFP, "AttributeUsernameTraversal", "account_creation_fraud", 2, 3),
    (ACFP, "AutomatedBrowser", "bot_signal", 1, 1),
    (ACFP, "BrowserInconsistency", "bot_signal", 1, 1),
    (ACFP, "SignalClientHumanInteractivityAbsentLow", "bot_signal", 1, 1),
    # Anti-DDoS
    (ANTI_DDOS, "DDoSRequests", "ddos", 2, 3),
]

_IDS = [f"{group.removeprefix('AWSManagedRules')}:{rule}" for group, rule, *_ in MANAGED_RULES]


@pytest.mark.parametrize(("group", "rule_id", "attack_class", "blocked", "_r"), MANAGED_RULES, ids=_IDS)
def test_managed_rule_blocked(group: str, rule_id: str, attack_class: str, blocked: int, _r: int):
    # GIVEN a native log whose terminating rule is the managed rule, action BLOCK
    event = _event(
        "BLOCK",
        rule_id,
        rule_group=group,
        terminating_rule_type="MANAGED_RULE_GROUP",
        matches=(_counted(rule_id, group, action="BLOCK", terminating=True),),
    )
    # WHEN the floor is computed
    floor = severity_floor(event)
    # THEN the blocked grade of the rule's class applies
    assert (floor.severity, floor.attack_class) == (blocked, attack_class)
    assert floor.rule == f"{group}:{rule_id}"
    assert "blocked" in floor.reason
    assert rule_id in floor.reason
    _assert_well_formed(floor)


@pytest.mark.parametrize("match_action", ["COUNT", "EXCLUDED_AS_COUNT"])
@pytest.mark.parametrize(("group", "rule_id", "attack_class", "_b", "reached"), MANAGED_RULES, ids=_IDS)
def test_managed_rule_only_counted_reached_the_app(
    group: str, rule_id: str, attack_class: str, _b: int, reached: int, match_action: str
):
    # GIVEN the request was allowed by the default action, the rule only counted
    event = _event("ALLOW", matches=(_counted(rule_id, group, action=match_action),))
    floor = severity_floor(event)
    # THEN it reached the application: the reached grade applies
    assert (floor.severity, floor.attack_class) == (reached, attack_class)
    assert floor.rule == f"{group}:{rule_id}"
    assert "reached the application" in floor.reason
    _assert_well_formed(floor)


def test_reason_names_rule_and_disposition():
    event = _event("ALLOW", matches=(_counted("SQLi_BODY", SQLI),))
    floor = severity_floor(event)
    assert floor.reason == (
        "SQL injection rule AWSManagedRulesSQLiRuleSet/SQLi_BODY matched and the request "
        "was allowed (counted), so it reached the application."
    )
    assert floor.rule == "AWSManagedRulesSQLiRuleSet:SQLi_BODY"


# ---- simplified events: only an action and a rule name ---------------------------------

# (rule_name, action, severity, attack_class)
SIMPLIFIED: list[tuple[str, str, int, str]] = [
    ("SQLi_QUERYARGUMENTS", "ALLOW", 4, "sqli"),
    ("SQLi_QUERYARGUMENTS", "BLOCK", 3, "sqli"),
    ("CrossSiteScripting_BODY", "ALLOW", 4, "xss"),
    ("Log4JRCE_HEADER", "ALLOW", 5, "log4j"),
    ("Log4JRCE_HEADER", "BLOCK", 3, "log4j"),
    ("UNIXShellCommandsVariables_BODY", "COUNT", 5, "command_injection"),
    ("NoUserAgent_HEADER", "BLOCK", 2, "no_user_agent"),
    ("CategoryHttpLibrary", "BLOCK", 1, "bot"),
    ("TGT_VolumetricIpTokenAbsent", "BLOCK", 1, "bot_targeted"),
    ("VolumetricIpHigh", "BLOCK", 2, "account_takeover"),
    ("AttributeUsernameTraversal", "ALLOW", 3, "account_takeover"),
    ("HostingProviderIPList", "BLOCK", 2, "anonymous_ip"),
    # a managed group name instead of the inner rule
    ("AWSManagedRulesSQLiRuleSet", "ALLOW", 4, "sqli"),
    ("AWSManagedRulesSQLiRuleSet", "BLOCK", 3, "sqli"),
    ("AWSManagedRulesCommonRuleSet", "ALLOW", 4, "common_web_attack"),
    ("AWSManagedRulesCommonRuleSet", "BLOCK", 3, "common_web_attack"),
    ("AWS-AWSManagedRulesKnownBadInputsRuleSet", "ALLOW", 4, "known_bad_input"),
    ("AWS#AWSManagedRulesUnixRuleSet#Version_1.2", "ALLOW", 5, "command_injection"),
    ("AWSManagedRulesWindowsRuleSet", "BLOCK", 3, "command_injection"),
    ("AWSManagedRulesPHPRuleSet", "ALLOW", 5, "php_exploit"),
    ("AWSManagedRulesWordPressRuleSet", "ALLOW", 4, "wordpress_path"),
    ("AWSManagedRulesLinuxRuleSet", "ALLOW", 4, "lfi"),
    ("AWSManagedRulesAmazonIpReputationList", "BLOCK", 2, "ip_reputation"),
    ("AWSManagedRulesAnonymousIpList", "BLOCK", 2, "anonymous_ip"),
    ("AWSManagedRulesBotControlRuleSet", "BLOCK", 1, "bot"),
    ("AWSManagedRulesATPRuleSet", "BLOCK", 2, "account_takeover"),
    ("AWSManagedRulesACFPRuleSet", "ALLOW", 3, "account_creation_fraud"),
    ("AWSManagedRulesAdminProtectionRuleSet", "BLOCK", 3, "admin_access"),
    ("AWSManagedRulesAntiDDoSRuleSet", "BLOCK", 2, "ddos"),
    # our own "group:rule" shape and a label in place of a rule
    ("AWSManagedRulesSQLiRuleSet:SQLi_BODY", "ALLOW", 4, "sqli"),
    ("awswaf:managed:aws:known-bad-inputs:Log4JRCE_Header", "ALLOW", 5, "log4j"),
]


@pytest.mark.parametrize(("rule_name", "action", "severity", "attack_class"), SIMPLIFIED)
def test_simplified_event_rule_name_alone(rule_name: str, action: str, severity: int, attack_class: str):
    floor = severity_floor(_event(action, rule_name, source_format="simplified"))
    assert (floor.severity, floor.attack_class) == (severity, attack_class)
    _assert_well_formed(floor)


# ---- labels ----------------------------------------------------------------------------

# (label, attack_class, severity under default ALLOW, severity when the request was blocked)
LABELS: list[tuple[str, str, int, int]] = [
    ("awswaf:managed:aws:sql-database:SQLi_Body", "sqli", 4, 3),
    ("awswaf:managed:aws:sql-database:SQLi_BODY", "sqli", 4, 3),
    ("AWSWAF:MANAGED:AWS:SQL-DATABASE:sqli_body", "sqli", 4, 3),
    ("awswaf:managed:aws:sql-database:SQLiExtendedPatterns_QueryArguments", "sqli", 4, 3),
    ("awswaf:managed:aws:sql-database:SQLi_FutureComponent", "sqli", 4, 3),
    ("awswaf:managed:aws:core-rule-set:CrossSiteScripting_Body", "xss", 4, 3),
    ("awswaf:managed:aws:core-rule-set:CrossSiteScripting_BODY", "xss", 4, 3),
    ("awswaf:managed:aws:core-rule-set:GenericLFI_QueryArguments", "lfi", 4, 3),
    ("awswaf:managed:aws:core-rule-set:GenericRFI_Body", "rfi", 4, 3),
    ("awswaf:managed:aws:core-rule-set:EC2MetaDataSSRF_Cookie", "ssrf", 4, 3),
    (
        "awswaf:managed:aws:core-rule-set:RestrictedExtensions_URIPath",
        "sensitive_file_access",
        4,
        3,
    ),
    ("awswaf:managed:aws:core-rule-set:NoUserAgent_Header", "no_user_agent", 2, 2),
    ("awswaf:managed:aws:core-rule-set:BadBots_Header", "bad_bot_user_agent", 3, 2),
    ("awswaf:managed:aws:core-rule-set:SizeRestrictions_QueryString", "size_restriction", 2, 2),
    ("awswaf:managed:aws:core-rule-set:SizeRestrictions_Body", "size_restriction", 2, 2),
    ("awswaf:managed:aws:known-bad-inputs:Log4JRCE_Header", "log4j", 5, 3),
    ("awswaf:managed:aws:known-bad-inputs:Log4JRCE_QueryString", "log4j", 5, 3),
    (
        "awswaf:managed:aws:known-bad-inputs:JavaDeserializationRCE_Body",
        "java_deserialization",
        5,
        3,
    ),
    ("awswaf:managed:aws:known-bad-inputs:Host_Localhost_Header", "host_header", 4, 3),
    ("awswaf:managed:aws:known-bad-inputs:Propfind_Method", "webdav_probe", 4, 3),
    ("awswaf:managed:aws:known-bad-inputs:ExploitablePaths_URIPath", "exploitable_path", 4, 3),
    ("awswaf:managed:aws:linux-os:LFI_URIPath", "lfi", 4, 3),
    ("awswaf:managed:aws:linux-os:LFI_QueryString", "lfi", 4, 3),
    (
        "awswaf:managed:aws:posix-os:UNIXShellCommandsVariables_QueryArguments",
        "command_injection",
        5,
        3,
    ),
    ("awswaf:managed:aws:posix-os:UNIXShellCommandsVariables_Body", "command_injection", 5, 3),
    ("awswaf:managed:aws:windows-os:PowerShellCommands_QueryArguments", "command_injection", 5, 3),
    ("awswaf:managed:aws:windows-os:WindowsShellCommands_Body", "command_injection", 5, 3),
    ("awswaf:managed:aws:php-app:PHPHighRiskMethodsVariables_Body", "php_exploit", 5, 3),
    (
        "awswaf:managed:aws:wordpress-app:WordPressExploitableCommands_QUERYSTRING",
        "wordpress_exploit",
        5,
        3,
    ),
    ("awswaf:managed:aws:wordpress-app:WordPressExploitablePaths_URIPATH", "wordpress_path", 4, 3),
    ("awswaf:managed:aws:admin-protection:AdminProtection_URIPath", "admin_access", 4, 3),
    ("awswaf:managed:aws:amazon-ip-list:AWSManagedIPReputationList", "ip_reputation", 2, 2),
    ("awswaf:managed:aws:amazon-ip-list:AWSManagedReconnaissanceList", "ip_reputation", 2, 2),
    ("awswaf:managed:aws:amazon-ip-list:AWSManagedIPDDoSList", "ip_reputation", 2, 2),
    ("awswaf:managed:aws:anonymous-ip-list:AnonymousIPList", "anonymous_ip", 2, 2),
    ("awswaf:managed:aws:anonymous-ip-list:HostingProviderIPList", "anonymous_ip", 2, 2),
    ("awswaf:managed:aws:bot-control:signal:non_browser_user_agent", "bot_signal", 1, 1),
    ("awswaf:managed:aws:bot-control:signal:automated_browser", "bot_signal", 1, 1),
    (
        "awswaf:managed:aws:bot-control:targeted:aggregate:volumetric:session:high",
        "bot_targeted",
        2,
        1,
    ),
    ("awswaf:managed:aws:atp:aggregate:volumetric:ip:high", "account_takeover", 3, 2),
    ("awswaf:managed:aws:atp:aggregate:attribute:username_traversal", "account_takeover", 3, 2),
    ("awswaf:managed:aws:atp:signal:credential_compromised", "compromised_credential", 3, 2),
    (
        "awswaf:managed:aws:atp:aggregate:attribute:compromised_credentials",
        "credential_stuffing",
        4,
        3,
    ),
    (
        "awswaf:managed:aws:atp:aggregate:volumetric:ip:successful_login_response:high",
        "credential_stuffing",
        4,
        3,
    ),
    ("awswaf:managed:aws:atp:signal:missing_credential", "login_anomaly", 2, 1),
    ("awswaf:managed:aws:acfp:risk_score:high", "account_creation_fraud", 3, 2),
    ("awswaf:managed:aws:acfp:signal:credential_compromised", "compromised_credential", 3, 2),
    (
        "awswaf:managed:aws:acfp:aggregate:volumetric:ip:creation:high",
        "account_creation_fraud",
        3,
        2,
    ),
    ("awswaf:managed:aws:anti-ddos:high-suspicion-ddos-request", "ddos", 3, 2),
    ("awswaf:managed:aws:anti-ddos:medium-suspicion-ddos-request", "ddos_suspect", 2, 1),
    # a custom label with a telling name
    ("awswaf:111122223333:webacl:prod-acl:sqli-detected", "sqli", 4, 3),
]


@pytest.mark.parametrize(("label", "attack_class", "allowed", "_b"), LABELS)
def test_label_under_default_allow(label: str, attack_class: str, allowed: int, _b: int):
    # GIVEN only a label says what matched (e.g. a managed group in count mode)
    floor = severity_floor(_event("ALLOW", labels=(label,)))
    assert (floor.severity, floor.attack_class) == (allowed, attack_class)
    assert floor.rule == label
    _assert_well_formed(floor)


@pytest.mark.parametrize(("label", "attack_class", "_a", "blocked"), LABELS)
def test_label_on_blocked_request(label: str, attack_class: str, _a: int, blocked: int):
    # GIVEN a default-BLOCK web ACL, so nothing the label describes reached the app
    floor = severity_floor(_event("BLOCK", labels=(label,)))
    assert floor.severity == max(blocked, 1)
    if blocked > 1:
        assert floor.attack_class == attack_class


INFORMATIONAL_LABELS = [
    "awswaf:managed:token:accepted",
    "awswaf:managed:token:absent",
    "awswaf:managed:token:rejected",
    "awswaf:managed:token:id:0a1b2c3d",
    "awswaf:managed:aws:bot-control:bot:verified",
    "awswaf:managed:aws:bot-control:bot:name:googlebot",
    # Bot Control labels every bot it recognizes by category; only its rules act.
    "awswaf:managed:aws:bot-control:bot:category:search_engine",
    "awswaf:managed:aws:bot-control:bot:category:http_library",
    "awswaf:managed:aws:bot-control:web_bot_auth:verified",
    "awswaf:managed:aws:atp:unsupported:cognito_idp",
    "awswaf:managed:aws:acfp:risk_score:low",
    "awswaf:managed:aws:acfp:risk_score:medium",
    "awswaf:managed:aws:anti-ddos:event-detected",
    "awswaf:managed:aws:anti-ddos:challengeable-request",
    "awswaf:managed:aws:anti-ddos:low-suspicion-ddos-request",
    "awswaf:clientip:geo:country:US",
    "awswaf:clientip:geo:region:US-VA",
    "awswaf:forwardedip:geo:country:DE",
    "awswaf:111122223333:webacl:prod-acl:internal-traffic",
    "awswaf:managed:aws:some-future-namespace:SomethingNew",
]


@pytest.mark.parametrize("label", INFORMATIONAL_LABELS)
def test_informational_labels_do_not_raise_the_floor(label: str):
    floor = severity_floor(_event("ALLOW", labels=(label,)))
    assert (floor.severity, floor.attack_class) == (0, "none")


# ---- custom rules: match details first, then the name ----------------------------------

# (rule id, condition types, severity blocked, severity counted, attack_class)
CONDITION_TYPES: list[tuple[str, tuple[str, ...], int, int, str]] = [
    ("rule-7", ("SQL_INJECTION",), 3, 4, "sqli"),
    ("rule-8", ("XSS",), 3, 4, "xss"),
    ("LoginGuard", ("SQL_INJECTION", "XSS"), 3, 4, "sqli"),
    ("payload-limit", ("SIZE_CONSTRAINT",), 2, 2, "size_restriction"),
    ("country-block", ("GEO_MATCH",), 2, 1, "geo_match"),
    ("deny-list", ("IP_MATCH",), 2, 2, "ip_match"),
    # how it matched says nothing: the name decides
    ("Block-SQLi-Login", ("REGEX_MATCH",), 3, 4, "sqli"),
    ("xss_filter", ("BYTE_MATCH",), 3, 4, "xss"),
    # nothing known: the documented default
    ("rule-42", ("REGEX_MATCH",), UNKNOWN_BLOCKED_SEVERITY, UNKNOWN_REACHED_SEVERITY, "unknown"),
]


@pytest.mark.parametrize(("rule_id", "conditions", "blocked", "_c", "attack_class"), CONDITION_TYPES)
def test_custom_rule_by_condition_type_blocked(
    rule_id: str, conditions: tuple[str, ...], blocked: int, _c: int, attack_class: str
):
    match = _counted(rule_id, None, action="BLOCK", terminating=True, condition_types=conditions)
    floor = severity_floor(_event("BLOCK", rule_id, terminating_rule_type="REGULAR", matches=(match,)))
    assert (floor.severity, floor.attack_class) == (blocked, attack_class)
    assert floor.rule == rule_id


@pytest.mark.parametrize(("rule_id", "conditions", "_b", "counted", "attack_class"), CONDITION_TYPES)
def test_custom_rule_by_condition_type_counted(
    rule_id: str, conditions: tuple[str, ...], _b: int, counted: int, attack_class: str
):
    match = _counted(rule_id, None, condition_types=conditions)
    floor = severity_floor(_event("ALLOW", matches=(match,)))
    assert floor.severity == counted
    if counted:
        assert floor.attack_class == attack_class


# (simplified rule name, severity when allowed, severity when blocked, attack_class)
NAME_TOKENS: list[tuple[str, int, int, str]] = [
    ("Block-SQLi-Login", 4, 3, "sqli"),
    ("sql_injection_guard", 4, 3, "sqli"),
    ("Block-SQL-Admin", 4, 3, "sqli"),
    ("xss_filter", 4, 3, "xss"),
    ("CrossSite-Guard", 4, 3, "xss"),
    ("LFI-Guard", 4, 3, "lfi"),
    ("rfi_block", 4, 3, "rfi"),
    ("path-traversal-check", 4, 3, "path_traversal"),
    ("RCE_Protect", 5, 3, "rce"),
    ("log4shell-block", 5, 3, "log4j"),
    ("JNDI_Lookup", 5, 3, "log4j"),
    ("Log4j-CVE-2021-44228", 5, 3, "log4j"),
    ("spring4shell_cve_2022_22965", 5, 3, "spring4shell"),
    ("java-deserialization", 5, 3, "java_deserialization"),
    ("ShellShock", 5, 3, "command_injection"),
    ("cmd_injection", 5, 3, "command_injection"),
    ("Windows-CMD", 5, 3, "command_injection"),
    ("ssrf-guard", 4, 3, "ssrf"),
    ("PHP-Filter", 4, 3, "php_attack"),
    ("wp-xmlrpc", 4, 3, "wordpress_attack"),
    ("WordPressLogin", 4, 3, "wordpress_attack"),
    ("AdminPathGuard", 4, 3, "admin_access"),
    ("RateLimit-1000", 2, 2, "rate_limit"),
    ("rate_based_login", 2, 2, "rate_limit"),
    ("Geo-Block-CN", 1, 2, "geo_match"),
    ("Bot-Block", 1, 1, "bot"),
    ("Block-BadBots", 3, 2, "bad_bot_user_agent"),
    ("ip-reputation-block", 2, 2, "ip_reputation"),
    ("IPReputation", 2, 2, "ip_reputation"),
    ("Tor-Exit-Nodes", 2, 2, "anonymous_ip"),
    ("body-size-limit", 2, 2, "size_restriction"),
    ("ddos-shield", 3, 2, "ddos"),
    ("credential-stuffing-login", 3, 2, "account_takeover"),
    # tokens only as whole words: none of these is an attack name
    ("source-check", UNKNOWN_REACHED_SEVERITY, UNKNOWN_BLOCKED_SEVERITY, "unknown"),
    ("moderate-traffic", UNKNOWN_REACHED_SEVERITY, UNKNOWN_BLOCKED_SEVERITY, "unknown"),
    ("sqlite-backup", UNKNOWN_REACHED_SEVERITY, UNKNOWN_BLOCKED_SEVERITY, "unknown"),
    ("TorontoOffice", UNKNOWN_REACHED_SEVERITY, UNKNOWN_BLOCKED_SEVERITY, "unknown"),
    ("MyCustomRule", UNKNOWN_REACHED_SEVERITY, UNKNOWN_BLOCKED_SEVERITY, "unknown"),
]


@pytest.mark.parametrize(("rule_name", "allowed", "_b", "attack_class"), NAME_TOKENS)
def test_custom_rule_by_name_allowed(rule_name: str, allowed: int, _b: int, attack_class: str):
    floor = severity_floor(_event("ALLOW", rule_name, source_format="simplified"))
    assert (floor.severity, floor.attack_class) == (allowed, attack_class)
    _assert_well_formed(floor)


@pytest.mark.parametrize(("rule_name", "_a", "blocked", "attack_class"), NAME_TOKENS)
def test_custom_rule_by_name_blocked(rule_name: str, _a: int, blocked: int, attack_class: str):
    floor = severity_floor(_event("BLOCK", rule_name, source_format="simplified"))
    assert (floor.severity, floor.attack_class) == (blocked, attack_class)


def test_unknown_rule_default_is_documented_in_the_reason():
    floor = severity_floor(_event("ALLOW", "rule-42", source_format="simplified"))
    assert floor.severity == UNKNOWN_REACHED_SEVERITY == 3
    assert "rule-42" in floor.reason
    assert "unrecognized" in floor.reason.lower()
    assert severity_floor(_event("BLOCK", "rule-42")).severity == UNKNOWN_BLOCKED_SEVERITY == 2


# ---- disposition: COUNT mode, BLOCK, CAPTCHA/CHALLENGE, explicit allow -----------------


def test_default_allow_without_match_is_zero():
    floor = severity_floor(_event("ALLOW"))
    assert (floor.severity, floor.attack_class, floor.rule) == (0, "none", "Default_Action")
    assert "default action" in floor.reason


def test_default_block_without_match_is_one():
    floor = severity_floor(_event("BLOCK"))
    assert (floor.severity, floor.attack_class) == (1, "default_block")


def test_blocked_request_with_counted_attack_uses_the_blocked_grade():
    # GIVEN a rate-based block and a SQLi rule that only counted
    event = _event(
        "BLOCK",
        "RateLimit-1000",
        terminating_rule_type="RATE_BASED",
        matches=(_counted("SQLi_BODY", SQLI),),
    )
    # THEN the request never reached the app: blocked policy, 3
    floor = severity_floor(event)
    assert (floor.severity, floor.attack_class) == (3, "sqli")


def test_rate_based_block_alone_is_two():
    event = _event("BLOCK", "per-ip-2000", terminating_rule_type="RATE_BASED")
    floor = severity_floor(event)
    assert (floor.severity, floor.attack_class) == (2, "rate_limit")


def test_floor_is_the_max_over_matches_and_labels():
    event = _event(
        "ALLOW",
        matches=(
            _counted("CategoryHttpLibrary", BOT),
            _counted("HostingProviderIPList", ANONYMOUS),
            _counted("Log4JRCE_HEADER", KBI, action="EXCLUDED_AS_COUNT"),
        ),
        labels=("awswaf:managed:aws:sql-database:SQLi_Body",),
    )
    floor = severity_floor(event)
    assert (floor.severity, floor.attack_class) == (5, "log4j")


def test_blocked_size_restriction_with_counted_log4j():
    event = _event(
        "BLOCK",
        "SizeRestrictions_BODY",
        rule_group=CRS,
        matches=(_counted("Log4JRCE_BODY", KBI),),
    )
    assert severity_floor(event).severity == 3


@pytest.mark.parametrize("action", ["CAPTCHA", "CHALLENGE"])
def test_interstitial_alone_is_one(action: str):
    floor = severity_floor(_event(action, "login-captcha"))
    assert floor.severity == 1
    assert action in floor.reason


@pytest.mark.parametrize(
    ("rule", "group", "attack_class"),
    [
        ("ChallengeAllDuringEvent", ANTI_DDOS, "challenge"),
        ("ChallengeDDoSRequests", ANTI_DDOS, "challenge"),
        ("AllRequests", ACFP, "challenge"),
        ("VolumetricIpHigh", ATP, "account_takeover"),
        ("TGT_VolumetricIpTokenAbsent", BOT, "bot_targeted"),
        ("CategoryHttpLibrary", BOT, "bot"),
    ],
)
def test_managed_rule_answered_with_interstitial_is_one(rule: str, group: str, attack_class: str):
    floor = severity_floor(_event("CHALLENGE", rule, rule_group=group))
    assert (floor.severity, floor.attack_class) == (1, attack_class)


def test_rate_based_captcha_is_one():
    event = _event("CAPTCHA", "RateLimit-1000", terminating_rule_type="RATE_BASED")
    assert severity_floor(event).severity == 1


def test_interstitial_with_counted_attack_keeps_the_blocked_grade():
    # GIVEN a CAPTCHA stopped the request but a SQLi rule had counted it
    event = _event("CAPTCHA", "login-captcha", matches=(_counted("SQLi_BODY", SQLI),))
    # THEN it did not reach the app, but it is no less an attack than a blocked one
    floor = severity_floor(event)
    assert (floor.severity, floor.attack_class) == (3, "sqli")


def test_valid_token_on_non_terminating_challenge_downgrades_bot_match():
    # GIVEN a targeted bot rule whose CHALLENGE was satisfied by a valid token
    event = _event("ALLOW", matches=(_counted("TGT_VolumetricIpTokenAbsent", BOT, "CHALLENGE"),))
    assert severity_floor(event).severity == 1


def test_valid_token_does_not_downgrade_an_attack_match():
    event = _event("ALLOW", matches=(_counted("SQLi_BODY", SQLI, "CAPTCHA"),))
    assert severity_floor(event).severity == 4


def test_explicit_allow_rule_in_native_log_is_zero():
    # GIVEN a native log: a terminating ALLOW rule is an allow list, not a detection
    match = _counted("Allow-wp-cron", None, action="ALLOW", terminating=True)
    floor = severity_floor(_event("ALLOW", "Allow-wp-cron", matches=(match,)))
    assert (floor.severity, floor.attack_class) == (0, "allow_rule")


def test_explicit_allow_of_ip_match_is_zero():
    match = _counted("office-ips", None, "ALLOW", terminating=True, condition_types=("IP_MATCH",))
    floor = severity_floor(_event("ALLOW", "office-ips", matches=(match,)))
    assert floor.severity == 0


def test_allow_named_rule_in_simplified_event_is_zero():
    floor = severity_floor(_event("ALLOW", "Allow-Office-IPs", source_format="simplified"))
    assert (floor.severity, floor.attack_class) == (0, "allow_rule")


def test_allow_override_of_attack_signature_still_reached_the_app():
    # GIVEN a managed SQLi rule whose action was overridden to ALLOW
    event = _event(
        "ALLOW",
        "SQLi_BODY",
        rule_group=SQLI,
        matches=(_counted("SQLi_BODY", SQLI, "ALLOW", terminating=True),),
    )
    assert severity_floor(event).severity == 4


def test_explicit_allow_does_not_hide_a_counted_attack():
    event = _event(
        "ALLOW",
        "AllowListedPartners",
        matches=(
            _counted("AllowListedPartners", None, "ALLOW", terminating=True),
            _counted("CrossSiteScripting_BODY", CRS),
        ),
    )
    assert (severity_floor(event).severity, severity_floor(event).attack_class) == (4, "xss")


def test_unknown_action_is_treated_as_reached():
    event = _event("REDIRECT", "SQLi_BODY", rule_group=SQLI)
    floor = severity_floor(event)
    assert floor.severity == 4
    assert "REDIRECT" in floor.reason


def test_unknown_action_without_rule_is_one():
    floor = severity_floor(_event("SOMETHING_NEW"))
    assert (floor.severity, floor.attack_class) == (1, "unknown_action")


def test_lowercase_action_is_understood():
    assert severity_floor(_event("block", "SQLi_BODY", rule_group=SQLI)).severity == 3


@pytest.mark.parametrize(
    "group",
    [
        "AWS#AWSManagedRulesSQLiRuleSet#Version_2.0",
        "AWS-AWSManagedRulesSQLiRuleSet",
        "AWS#AWS-AWSManagedRulesSQLiRuleSet",
        "awsmanagedrulessqliruleset",
    ],
)
def test_vendor_prefix_and_version_are_stripped(group: str):
    floor = severity_floor(_event("ALLOW", matches=(_counted("FutureSQLiRule2030", group),)))
    assert (floor.severity, floor.attack_class) == (4, "sqli")
    assert "#" not in floor.rule
    assert not floor.rule.upper().startswith("AWS#")


def test_unknown_inner_rule_falls_back_to_the_group():
    event = _event("ALLOW", matches=(_counted("BrandNewRule", KBI),))
    floor = severity_floor(event)
    assert (floor.severity, floor.attack_class) == (4, "known_bad_input")


def test_atp_traversal_is_not_path_traversal():
    # GIVEN ATP's AttributeUsernameTraversal: "traversal" would read as path traversal
    floor = severity_floor(_event("BLOCK", "AttributeUsernameTraversal", rule_group=ATP))
    assert floor.attack_class == "account_takeover"


def test_ambiguous_id_in_a_custom_group_is_not_a_managed_rule():
    # GIVEN "AllRequests" in a custom rule group: not ACFP's rule of that name
    floor = severity_floor(_event("BLOCK", "AllRequests", rule_group="MyRuleGroup"))
    assert floor.attack_class == "unknown"


# ---- totality: garbage never raises ----------------------------------------------------

GARBAGE = [
    "",
    " ",
    "\t\n",
    "\x00\x01\x7f",
    "🔥💣",
    "ÜñíçødéRüle",
    "规则名称",
    "\u202eevil\u200b",
    "a" * 500,
    "SQLi_" * 100,
    ":",
    "::::",
    "awswaf:",
    "awswaf:managed:",
    "awswaf:managed:aws:",
    "awswaf:managed:aws:sql-database:",
    "AWS#",
    "AWS-AWS-AWS#",
    "#Version_1.0",
    "Default_Action",
    "default_action",
    "null",
    "None",
    "-1",
    "SQLi_BODY\r\n",
]


@pytest.mark.parametrize("garbage", GARBAGE)
@pytest.mark.parametrize("action", ["ALLOW", "BLOCK", "COUNT", "CAPTCHA", "CHALLENGE", "", "??"])
def test_garbage_never_raises(garbage: str, action: str):
    event = _event(
        action,
        garbage,
        rule_group=garbage,
        terminating_rule_type=garbage,
        matches=(
            RuleMatch(
                rule_id=garbage,
                rule_group=garbage,
                action=garbage,
                terminating=True,
                condition_types=(garbage,),
            ),
        ),
        labels=(garbage, f"awswaf:managed:aws:{garbage}:{garbage}"),
    )
    _assert_well_formed(severity_floor(event))


def test_long_rule_name_is_bounded():
    floor = severity_floor(_event("ALLOW", "x" * 5000, source_format="simplified"))
    assert len(floor.rule) <= MAX_ID_CHARS
    assert len(floor.reason) < 600


_text = st.text(max_size=80)


@settings(max_examples=300, deadline=None)
@given(
    action=_text,
    rule_name=_text,
    rule_group=st.none() | _text,
    rule_type=st.none() | _text,
    labels=st.lists(_text, max_size=4),
    matches=st.lists(
        st.builds(
            RuleMatch,
            rule_id=_text,
            rule_group=st.none() | _text,
            action=_text,
            terminating=st.booleans(),
            condition_types=st.lists(_text, max_size=3).map(tuple),
        ),
        max_size=4,
    ),
    source_format=st.sampled_from(["waf_log", "simplified"]),
)
def test_total_over_arbitrary_events(
    action: str,
    rule_name: str,
    rule_group: str | None,
    rule_type: str | None,
    labels: list[str],
    matches: list[RuleMatch],
    source_format: str,
):
    event = _event(
        action,
        rule_name,
        rule_group=rule_group,
        terminating_rule_type=rule_type,
        matches=tuple(matches),
        labels=tuple(labels),
        source_format=source_format,
    )
    _assert_well_formed(severity_floor(event))
