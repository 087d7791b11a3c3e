"""Every rule of every AWS managed rule group, blocked and counted, graded by the policy.

The rule names and labels are the ones the AWS WAF Developer Guide lists on its
"aws-managed-rule-groups-*" pages (baseline, use-case, IP reputation, Bot Control common
and targeted, ATP, ACFP, Anti-DDoS). A rule graded by the unknown default fails here:
that is the signal that AWS added a rule the catalog does not know yet.
"""

from __future__ import annotations

import pytest

from secops_core.ingest.normalize import normalize_event
from secops_core.waf.floor import severity_floor
from secops_core.waf.operator import EMPTY

# The README's severity policy, written out independently of the catalog.
POLICY: dict[str, tuple[int, int]] = {
    "sqli": (3, 4),
    "xss": (3, 4),
    "lfi": (3, 4),
    "rfi": (3, 4),
    "ssrf": (3, 4),
    "sensitive_file_access": (3, 4),
    "host_header": (3, 4),
    "webdav_probe": (3, 4),
    "exploitable_path": (3, 4),
    "admin_access": (3, 4),
    "wordpress_path": (3, 4),
    "credential_stuffing": (3, 4),
    "log4j": (3, 5),
    "java_deserialization": (3, 5),
    "command_injection": (3, 5),
    "rce": (3, 5),
    "php_exploit": (3, 5),
    "wordpress_exploit": (3, 5),
    "compromised_credential": (2, 3),
    "account_takeover": (2, 3),
    "account_creation_fraud": (2, 3),
    "ddos": (2, 3),
    "bad_bot_user_agent": (2, 3),
    "no_user_agent": (2, 2),
    "size_restriction": (2, 2),
    "ip_reputation": (2, 2),
    "anonymous_ip": (2, 2),
    "login_anomaly": (1, 2),
    "bot_targeted": (1, 2),
    "bot": (1, 1),
    "bot_signal": (1, 1),
    "challenge": (1, 1),
    "unsupported_request": (1, 1),
}

_NS = "awswaf:managed:aws:"


def _by_id(group: str, namespace: str, cls: str, *rules: str) -> list[tuple[str, str, str | None, str]]:
    """Rules whose label carries the rule id (awswaf:managed:aws:<namespace>:<RuleName>)."""
    return [(group, rule, f"{_NS}{namespace}:{rule}", cls) for rule in rules]


CRS = "AWSManagedRulesCommonRuleSet"
BOT = "AWSManagedRulesBotControlRuleSet"
ATP = "AWSManagedRulesATPRuleSet"
ACFP = "AWSManagedRulesACFPRuleSet"
DDOS = "AWSManagedRulesAntiDDoSRuleSet"
_BC = f"{_NS}bot-control:"
_ATP = f"{_NS}atp:"
_ACFP = f"{_NS}acfp:"

# (group, rule name, a label the rule adds or None, expected class)
MANAGED: list[tuple[str, str, str | None, str]] = [
    # ---- baseline: core rule set --------------------------------------------------------
    *_by_id(CRS, "core-rule-set", "no_user_agent", "NoUserAgent_HEADER"),
    *_by_id(CRS, "core-rule-set", "bad_bot_user_agent", "UserAgent_BadBots_HEADER"),
    *_by_id(
        CRS,
        "core-rule-set",
        "size_restriction",
        "SizeRestrictions_QUERYSTRING",
        "SizeRestrictions_Cookie_HEADER",
        "SizeRestrictions_BODY",
        "SizeRestrictions_URIPATH",
    ),
    *_by_id(
        CRS,
        "core-rule-set",
        "ssrf",
        "EC2MetaDataSSRF_BODY",
        "EC2MetaDataSSRF_COOKIE",
        "EC2MetaDataSSRF_URIPATH",
        "EC2MetaDataSSRF_QUERYARGUMENTS",
    ),
    *_by_id(
        CRS, "core-rule-set", "lfi", "GenericLFI_QUERYARGUMENTS", "GenericLFI_URIPATH", "GenericLFI_BODY"
    ),
    *_by_id(
        CRS,
        "core-rule-set",
        "sensitive_file_access",
        "RestrictedExtensions_URIPATH",
        "RestrictedExtensions_QUERYARGUMENTS",
    ),
    *_by_id(
        CRS, "core-rule-set", "rfi", "GenericRFI_QUERYARGUMENTS", "GenericRFI_BODY", "GenericRFI_URIPATH"
    ),
    *_by_id(
        CRS,
        "core-rule-set",
        "xss",
        "CrossSiteScripting_COOKIE",
        "CrossSiteScripting_QUERYARGUMENTS",
        "CrossSiteScripting_BODY",
        "CrossSiteScripting_URIPATH",
    ),
    # ---- baseline: admin protection, known bad inputs ------------------------------------
    *_by_id(
        "AWSManagedRulesAdminProtectionRuleSet", "admin-protection", "admin_access", "AdminProtection_URIPATH"
    ),
    *_by_id(
        "AWSManagedRulesKnownBadInputsRuleSet",
        "known-bad-inputs",
        "java_deserialization",
        "JavaDeserializationRCE_HEADER",
        "JavaDeserializationRCE_BODY",
        "JavaDeserializationRCE_URIPATH",
        "JavaDeserializationRCE_QUERYSTRING",
    ),
    *_by_id(
        "AWSManagedRulesKnownBadInputsRuleSet", "known-bad-inputs", "host_header", "Host_localhost_HEADER"
    ),
    *_by_id("AWSManagedRulesKnownBadInputsRuleSet", "known-bad-inputs", "webdav_probe", "PROPFIND_METHOD"),
    *_by_id(
        "AWSManagedRulesKnownBadInputsRuleSet",
        "known-bad-inputs",
        "exploitable_path",
        "ExploitablePaths_URIPATH",
    ),
    *_by_id(
        "AWSManagedRulesKnownBadInputsRuleSet",
        "known-bad-inputs",
        "log4j",
        "Log4JRCE_HEADER",
        "Log4JRCE_QUERYSTRING",
        "Log4JRCE_BODY",
        "Log4JRCE_URIPATH",
    ),
    *_by_id("AWSManagedRulesKnownBadInputsRuleSet", "known-bad-inputs", "rce", "ReactJSRCE_BODY"),
    # ---- use-case ---------------------------------------------------------------------------
    *_by_id(
        "AWSManagedRulesSQLiRuleSet",
        "sql-database",
        "sqli",
        "SQLi_QUERYARGUMENTS",
        "SQLiExtendedPatterns_QUERYARGUMENTS",
        "SQLi_BODY",
        "SQLiExtendedPatterns_BODY",
        "SQLi_COOKIE",
        "SQLi_URIPATH",
    ),
    *_by_id("AWSManagedRulesLinuxRuleSet", "linux-os", "lfi", "LFI_URIPATH", "LFI_QUERYSTRING", "LFI_HEADER"),
    *_by_id(
        "AWSManagedRulesUnixRuleSet",
        "posix-os",
        "command_injection",
        "UNIXShellCommandsVariables_QUERYSTRING",
        "UNIXShellCommandsVariables_BODY",
        "UNIXShellCommandsVariables_HEADER",
    ),
    *_by_id(
        "AWSManagedRulesWindowsRuleSet",
        "windows-os",
        "command_injection",
        "WindowsShellCommands_COOKIE",
        "WindowsShellCommands_QUERYARGUMENTS",
        "WindowsShellCommands_BODY",
        "PowerShellCommands_COOKIE",
        "PowerShellCommands_QUERYARGUMENTS",
        "PowerShellCommands_BODY",
    ),
    *_by_id(
        "AWSManagedRulesPHPRuleSet",
        "php-app",
        "php_exploit",
        "PHPHighRiskMethodsVariables_HEADER",
        "PHPHighRiskMethodsVariables_QUERYSTRING",
        "PHPHighRiskMethodsVariables_BODY",
    ),
    *_by_id(
        "AWSManagedRulesWordPressRuleSet",
        "wordpress-app",
        "wordpress_exploit",
        "WordPressExploitableCommands_QUERYSTRING",
    ),
    *_by_id(
        "AWSManagedRulesWordPressRuleSet",
        "wordpress-app",
        "wordpress_path",
        "WordPressExploitablePaths_URIPATH",
    ),
    # ---- IP reputation ------------------------------------------------------------------------
    *_by_id(
        "AWSManagedRulesAmazonIpReputationList",
        "amazon-ip-list",
        "ip_reputation",
        "AWSManagedIPReputationList",
        "AWSManagedReconnaissanceList",
        "AWSManagedIPDDoSList",
    ),
    *_by_id(
        "AWSManagedRulesAnonymousIpList",
        "anonymous-ip-list",
        "anonymous_ip",
        "AnonymousIPList",
        "HostingProviderIPList",
    ),
    # ---- Bot Control, common level ---------------------------------------------------------
    *[
        (BOT, f"Category{name}", f"{_BC}bot:category:{label}", "bot")
        for name, label in (
            ("Advertising", "advertising"),
            ("AI", "ai"),
            ("Archiver", "archiver"),
            ("ContentFetcher", "content_fetcher"),
            ("EmailClient", "email_client"),
            ("HttpLibrary", "http_library"),
            ("LinkChecker", "link_checker"),
            ("Miscellaneous", "miscellaneous"),
            ("Monitoring", "monitoring"),
            ("PagePreview", "page_preview"),
            ("ScrapingFramework", "scraping_framework"),
            ("SearchEngine", "search_engine"),
            ("Security", "security"),
            ("Seo", "seo"),
            ("SocialMedia", "social_media"),
            ("Webhooks", "webhooks"),
        )
    ],
    (BOT, "SignalAutomatedBrowser", f"{_BC}signal:automated_browser", "bot_signal"),
    (BOT, "SignalKnownBotDataCenter", f"{_BC}signal:known_bot_data_center", "bot_signal"),
    (BOT, "SignalNonBrowserUserAgent", f"{_BC}signal:non_browser_user_agent", "bot_signal"),
    # ---- Bot Control, targeted level ---------------------------------------------------------
    (
        BOT,
        "TGT_VolumetricIpTokenAbsent",
        f"{_BC}targeted:aggregate:volumetric:ip:token_absent",
        "bot_targeted",
    ),
    (BOT, "TGT_VolumetricSession", f"{_BC}targeted:aggregate:volumetric:session:high", "bot_targeted"),
    (
        BOT,
        "TGT_VolumetricSessionMaximum",
        f"{_BC}targeted:aggregate:volumetric:session:maximum",
        "bot_targeted",
    ),
    (BOT, "TGT_SignalAutomatedBrowser", f"{_BC}targeted:signal:automated_browser", "bot_targeted"),
    (
        BOT,
        "TGT_SignalBrowserAutomationExtension",
        f"{_BC}targeted:signal:browser_automation_extension",
        "bot_targeted",
    ),
    (BOT, "TGT_SignalBrowserInconsistency", f"{_BC}targeted:signal:browser_inconsistency", "bot_targeted"),
    (BOT, "TGT_TokenAbsent", None, "bot_targeted"),
    *[
        (
            BOT,
            f"TGT_TokenReuse{scope}{level}",
            f"{_BC}targeted:aggregate:coordinated_activity:{level.lower()}",
            "bot_targeted",
        )
        for scope in ("Ip", "Country", "Asn")
        for level in ("Low", "Medium", "High")
    ],
    *[
        (
            BOT,
            f"TGT_ML_CoordinatedActivity{level}",
            f"{_BC}targeted:aggregate:coordinated_activity:{level.lower()}",
            "bot_targeted",
        )
        for level in ("Low", "Medium", "High")
    ],
    # ---- ATP ---------------------------------------------------------------------------------
    (ATP, "UnsupportedCognitoIDP", f"{_ATP}unsupported:cognito_idp", "unsupported_request"),
    (ATP, "VolumetricIpHigh", f"{_ATP}aggregate:volumetric:ip:high", "account_takeover"),
    (ATP, "VolumetricSession", f"{_ATP}aggregate:volumetric:session", "account_takeover"),
    (
        ATP,
        "AttributeCompromisedCredentials",
        f"{_ATP}aggregate:attribute:compromised_credentials",
        "credential_stuffing",
    ),
    (ATP, "AttributeUsernameTraversal", f"{_ATP}aggregate:attribute:username_traversal", "account_takeover"),
    (ATP, "AttributePasswordTraversal", f"{_ATP}aggregate:attribute:password_traversal", "account_takeover"),
    (ATP, "AttributeLongSession", f"{_ATP}aggregate:attribute:long_session", "account_takeover"),
    (ATP, "TokenRejected", "awswaf:managed:token:rejected", "login_anomaly"),
    (ATP, "SignalMissingCredential", f"{_ATP}signal:missing_credential", "login_anomaly"),
    (
        ATP,
        "VolumetricIpFailedLoginResponseHigh",
        f"{_ATP}aggregate:volumetric:ip:failed_login_response:high",
        "account_takeover",
    ),
    (
        ATP,
        "VolumetricSessionFailedLoginResponseHigh",
        f"{_ATP}aggregate:volumetric:session:failed_login_response:high",
        "account_takeover",
    ),
    # ---- ACFP --------------------------------------------------------------------------------
    (ACFP, "UnsupportedCognitoIDP", f"{_ACFP}unsupported:cognito_idp", "unsupported_request"),
    (ACFP, "AllRequests", None, "challenge"),
    (ACFP, "RiskScoreHigh", f"{_ACFP}risk_score:high", "account_creation_fraud"),
    (ACFP, "SignalCredentialCompromised", f"{_ACFP}signal:credential_compromised", "compromised_credential"),
    (
        ACFP,
        "SignalClientHumanInteractivityAbsentLow",
        f"{_ACFP}signal:client:human_interactivity:low",
        "bot_signal",
    ),
    (ACFP, "AutomatedBrowser", f"{_ACFP}signal:automated_browser", "bot_signal"),
    (ACFP, "BrowserInconsistency", f"{_ACFP}signal:browser_inconsistency", "bot_signal"),
    (ACFP, "VolumetricIpHigh", f"{_ACFP}aggregate:volumetric:ip:creation:high", "account_creation_fraud"),
    (
        ACFP,
        "VolumetricSessionHigh",
        f"{_ACFP}aggregate:volumetric:session:creation:high",
        "account_creation_fraud",
    ),
    (
        ACFP,
        "VolumetricPhoneNumberHigh",
        f"{_ACFP}aggregate:volumetric:phone_number:high",
        "account_creation_fraud",
    ),
    (ACFP, "VolumetricAddressHigh", f"{_ACFP}aggregate:volumetric:address:high", "account_creation_fraud"),
    (ACFP, "VolumetricAddressLow", f"{_ACFP}aggregate:volumetric:address:low", "account_creation_fraud"),
    (
        ACFP,
        "VolumetricIPSuccessfulResponse",
        f"{_ACFP}aggregate:volumetric:ip:successful_creation_response:high",
        "account_creation_fraud",
    ),
    (
        ACFP,
        "VolumetricSessionSuccessfulResponse",
        f"{_ACFP}aggregate:volumetric:session:successful_creation_response:high",
        "account_creation_fraud",
    ),
    (
        ACFP,
        "VolumetricSessionTokenReuseIp",
        f"{_ACFP}aggregate:volumetric:session:token_reuse:ip",
        "account_creation_fraud",
    ),
    # ---- Anti-DDoS ---------------------------------------------------------------------------
    (DDOS, "ChallengeAllDuringEvent", f"{_NS}anti-ddos:event-detected", "challenge"),
    (DDOS, "ChallengeDDoSRequests", f"{_NS}anti-ddos:challengeable-request", "challenge"),
    (DDOS, "DDoSRequests", f"{_NS}anti-ddos:high-suspicion-ddos-request", "ddos"),
]

_IDS = [f"{group.removeprefix('AWSManagedRules')}:{rule}" for group, rule, _l, _c in MANAGED]


def _blocked_record(group: str, rule: str, label: str | None) -> dict[str, object]:
    return {
        "timestamp": 1_700_000_000_000,
        "action": "BLOCK",
        "terminatingRuleId": group,
        "terminatingRuleType": "MANAGED_RULE_GROUP",
        "ruleGroupList": [
            {"ruleGroupId": f"AWS#{group}", "terminatingRule": {"ruleId": rule, "action": "BLOCK"}}
        ],
        "labels": [{"name": label}] if label else [],
        "httpRequest": {"clientIp": "203.0.113.9", "uri": "/x", "httpMethod": "GET"},
    }


def _counted_record(group: str, rule: str, label: str | None) -> dict[str, object]:
    return {
        "timestamp": 1_700_000_000_000,
        "action": "ALLOW",
        "terminatingRuleId": "Default_Action",
        "terminatingRuleType": "REGULAR",
        "ruleGroupList": [
            {
                "ruleGroupId": f"AWS#{group}#Version_1.0",
                "terminatingRule": None,
                "nonTerminatingMatchingRules": [{"ruleId": rule, "action": "COUNT"}],
            }
        ],
        "labels": [{"name": label}] if label else [],
        "httpRequest": {"clientIp": "203.0.113.9", "uri": "/x", "httpMethod": "GET"},
    }


def test_the_table_covers_every_group_and_has_no_duplicates() -> None:
    # GIVEN the table WHEN its rows are counted THEN 15 groups and no rule twice
    assert len({group for group, *_ in MANAGED}) == 15
    assert len({(group, rule) for group, rule, *_ in MANAGED}) == len(MANAGED)


@pytest.mark.parametrize(("group", "rule", "label", "cls"), MANAGED, ids=_IDS)
@pytest.mark.parametrize("with_label", [False, True], ids=["rule", "rule+label"])
@pytest.mark.parametrize("mode", ["blocked", "reached"])
def test_managed_rule_grades_by_policy(
    group: str, rule: str, label: str | None, cls: str, with_label: bool, mode: str
) -> None:
    # GIVEN a native log record in which the managed rule blocked the request, or only
    # counted it (the web ACL's default ALLOW then let it reach the application)
    build = _blocked_record if mode == "blocked" else _counted_record
    event = normalize_event(build(group, rule, label if with_label else None))
    # WHEN the floor is computed with no operator catalog
    floor = severity_floor(event, EMPTY)
    # THEN the rule's class decides, at the policy's grade, and never the unknown default
    expected = POLICY[cls][0 if mode == "blocked" else 1]
    assert (floor.attack_class, floor.severity) == (cls, expected)
    assert floor.floor_reason is not None
    assert floor.floor_reason.source != "default"
    assert floor.floor_reason.disposition == mode


@pytest.mark.parametrize(
    ("label", "cls"),
    [
        # The label form that names the ACFP rule itself used to hit the group catch-all.
        (f"{_ACFP}AutomatedBrowser", "bot_signal"),
        (f"{_ACFP}BrowserInconsistency", "bot_signal"),
    ],
)
def test_acfp_rule_name_labels_are_bot_signals(label: str, cls: str) -> None:
    # GIVEN an ACFP rule counted, with the label that carries its rule name
    event = normalize_event(_counted_record(ACFP, label.rsplit(":", 1)[1], label))
    # WHEN graded THEN bot signal 1 (reached), not account creation fraud 3
    floor = severity_floor(event, EMPTY)
    assert (floor.attack_class, floor.severity) == (cls, 1)
