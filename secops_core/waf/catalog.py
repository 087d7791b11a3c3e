"""The WAF catalog: every class, managed rule group, rule id, label and name token.

One table per fact (docs/architecture.md, "Severity"): a class holds its operator
name, its grades (blocked / reached), its kind and what to check when it reached the
application. The floor grades with it, the templated analysis words and advises with
it, and the README's severity table is tested against ``severity_table()``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# What a class is, for the floor and for the follow-up text:
#   rce / attack - an injected payload or exploit probe: an interstitial does not make it
#                  harmless, so CAPTCHA/CHALLENGE keep the blocked grade.
#   fraud        - account takeover and creation fraud signals.
#   volume       - rate, DDoS and size signals.
#   reputation   - who sent it (IP lists, anonymizers, geography).
#   bot          - bot categories, signals and interstitials.
#   none         - no finding (nothing matched, an allow rule).
Kind = Literal["rce", "attack", "fraud", "volume", "reputation", "bot", "none"]
ATTACK_KINDS = frozenset({"rce", "attack"})


@dataclass(frozen=True, slots=True)
class AttackClass:
    name: str
    title: str  # the operator's words (attack_type, reasons, notifications)
    blocked: int | None  # None: cannot happen blocked ("-" in the table)
    reached: int | None  # None: cannot happen reached
    kind: Kind
    why: str  # the table's "rule ids / labels / why" column
    # What to check in the application when a request of this class reached it.
    follow_up: str | None = None

    @property
    def attack(self) -> bool:
        return self.kind in ATTACK_KINDS

    @property
    def blocked_grade(self) -> int:
        return self.blocked if self.blocked is not None else 0

    @property
    def reached_grade(self) -> int:
        return self.reached if self.reached is not None else 0


_RCE_CHECK = "look for signs of compromise on the host (new processes, outbound connections)"
_FILE_CHECK = "check that no file path is built from request input"
_WORDPRESS_CHECK = "check that WordPress core and plugins are patched"
_PHP_CHECK = "check that PHP and its modules are patched"
_GENERIC_CHECK = "check the application logs around it for errors or unusual responses"
_LOGIN_CHECK = "check whether the login succeeded and reset that credential if it did"

#: Documented default for a rule nothing recognizes.
UNKNOWN_BLOCKED_SEVERITY = 2
UNKNOWN_REACHED_SEVERITY = 3

# The severity table. Order is the README's order.
CLASSES: dict[str, AttackClass] = {
    c.name: c
    for c in (
        AttackClass(
            "sqli",
            "SQL injection",
            3,
            4,
            "attack",
            "SQLi_*, SQLiExtendedPatterns_* (sql-database)",
            "check that the targeted parameter is bound with parameterized queries",
        ),
        AttackClass(
            "xss",
            "Cross-site scripting",
            3,
            4,
            "attack",
            "CrossSiteScripting_* (core-rule-set)",
            "check that the reflected value is output-encoded and that a Content-Security-Policy is in place",
        ),
        AttackClass(
            "lfi", "Local file inclusion", 3, 4, "attack", "GenericLFI_* (CRS), LFI_* (linux-os)", _FILE_CHECK
        ),
        AttackClass(
            "rfi",
            "Remote file inclusion",
            3,
            4,
            "attack",
            "GenericRFI_* (CRS)",
            "check that the application never includes or fetches a URL taken from the request",
        ),
        AttackClass(
            "path_traversal", "Path traversal", 3, 4, "attack", "custom names: traversal, dotdot", _FILE_CHECK
        ),
        AttackClass(
            "ssrf",
            "Server-side request forgery",
            3,
            4,
            "attack",
            "EC2MetaDataSSRF_* (instance credentials), custom names: ssrf",
            "check that IMDSv2 is enforced and that the application never fetches a URL from the request",
        ),
        AttackClass(
            "xxe",
            "XML external entity",
            3,
            4,
            "attack",
            "custom names: xxe",
            "check that the XML parser has external entities and DTDs disabled",
        ),
        AttackClass(
            "ssti",
            "Server-side template injection",
            3,
            5,
            "rce",
            "custom names: ssti",
            f"check that no template is built from request input and {_RCE_CHECK}",
        ),
        AttackClass(
            "sensitive_file_access",
            "Sensitive file access",
            3,
            4,
            "attack",
            "RestrictedExtensions_* (.log, .ini, .bak ...), custom names: .env, .git",
            "check that no backup, log, configuration or repository file (.env, .git) is "
            "served from the web root",
        ),
        AttackClass(
            "host_header",
            "Host header attack",
            3,
            4,
            "attack",
            "Host_localhost_HEADER",
            "check that the application does not build links or redirects from the Host header",
        ),
        AttackClass(
            "webdav_probe",
            "WebDAV probe",
            3,
            4,
            "attack",
            "PROPFIND_METHOD",
            "check that WebDAV is disabled on the web server",
        ),
        AttackClass(
            "exploitable_path",
            "Exploitable path probe",
            3,
            4,
            "attack",
            "ExploitablePaths_URIPATH, custom names: graphql introspection",
            "check that administrative, debug and introspection paths are not exposed",
        ),
        AttackClass(
            "admin_access",
            "Admin page access",
            3,
            4,
            "attack",
            "AdminProtection_URIPATH, custom names: admin, wp-admin panels",
            "check that the admin path requires authentication and is not public",
        ),
        AttackClass(
            "known_bad_input",
            "Known bad input",
            3,
            4,
            "attack",
            "known-bad-inputs group, inner rule unknown",
            _GENERIC_CHECK,
        ),
        AttackClass(
            "common_web_attack",
            "Common web attack",
            3,
            4,
            "attack",
            "core rule set group, inner rule unknown",
            _GENERIC_CHECK,
        ),
        AttackClass(
            "wordpress_path",
            "WordPress path probe",
            3,
            4,
            "attack",
            "WordPressExploitablePaths_URIPATH, WordPress group",
            _WORDPRESS_CHECK,
        ),
        AttackClass(
            "wordpress_attack",
            "WordPress attack",
            3,
            4,
            "attack",
            "custom names: wordpress, wp",
            _WORDPRESS_CHECK,
        ),
        AttackClass("php_attack", "PHP attack", 3, 4, "attack", "custom names: php", _PHP_CHECK),
        AttackClass(
            "log4j",
            "Log4j remote code execution",
            3,
            5,
            "rce",
            "Log4JRCE_* (CVE-2021-44228)",
            f"check that every Java service behind this host runs a patched Log4j and {_RCE_CHECK}",
        ),
        AttackClass(
            "java_deserialization",
            "Java deserialization remote code execution",
            3,
            5,
            "rce",
            "JavaDeserializationRCE_* (incl. Spring Core)",
            f"check that the service never deserializes request data and {_RCE_CHECK}",
        ),
        AttackClass(
            "spring4shell",
            "Spring4Shell remote code execution",
            3,
            5,
            "rce",
            "custom names: spring4shell",
            f"check that Spring Framework is patched (CVE-2022-22965) and {_RCE_CHECK}",
        ),
        AttackClass(
            "command_injection",
            "Shell command injection",
            3,
            5,
            "rce",
            "UNIXShellCommandsVariables_*, WindowsShellCommands_*, PowerShellCommands_*",
            f"check that no shell command is built from request input and {_RCE_CHECK}",
        ),
        AttackClass(
            "rce",
            "Remote code execution",
            3,
            5,
            "rce",
            "ReactJSRCE_BODY (CVE-2025-55182), custom names: rce, remote code, cve-YYYY-NNNN",
            f"patch the targeted component and {_RCE_CHECK}",
        ),
        AttackClass(
            "php_exploit",
            "PHP exploit",
            3,
            5,
            "rce",
            "PHPHighRiskMethodsVariables_*",
            f"{_PHP_CHECK} and {_RCE_CHECK}",
        ),
        AttackClass(
            "wordpress_exploit",
            "WordPress exploit",
            3,
            5,
            "rce",
            "WordPressExploitableCommands_*",
            f"{_WORDPRESS_CHECK} and {_RCE_CHECK}",
        ),
        AttackClass(
            "credential_stuffing",
            "Credential stuffing",
            3,
            4,
            "attack",
            "ATP AttributeCompromisedCredentials, successful-login volume",
            "check which logins from this source succeeded, reset those passwords and consider MFA",
        ),
        AttackClass(
            "compromised_credential",
            "Compromised credential",
            2,
            3,
            "fraud",
            "a single leaked credential (ATP/ACFP signal)",
            _LOGIN_CHECK,
        ),
        AttackClass(
            "account_takeover",
            "Account takeover attempt",
            2,
            3,
            "fraud",
            "ATP volumetric / attribute rules",
            _LOGIN_CHECK,
        ),
        AttackClass(
            "account_creation_fraud",
            "Account creation fraud",
            2,
            3,
            "fraud",
            "ACFP rules (RiskScoreHigh, volumetric ...)",
            "review the accounts created from this source",
        ),
        AttackClass("ddos", "DDoS", 2, 3, "volume", "Anti-DDoS DDoSRequests, high suspicion"),
        AttackClass(
            "bad_bot_user_agent",
            "Bad bot user agent",
            2,
            3,
            "bot",
            "UserAgent_BadBots_HEADER: a scanner that got through is worth watching",
        ),
        AttackClass("no_user_agent", "Missing user agent", 2, 2, "bot", "NoUserAgent_HEADER"),
        AttackClass(
            "size_restriction", "Oversized request", 2, 2, "volume", "SizeRestrictions_*, SIZE_CONSTRAINT"
        ),
        AttackClass(
            "ip_reputation",
            "IP reputation",
            2,
            2,
            "reputation",
            "AWSManagedIPReputationList, ReconnaissanceList, IPDDoSList, deny lists",
        ),
        AttackClass(
            "anonymous_ip", "Anonymous IP", 2, 2, "reputation", "AnonymousIPList, HostingProviderIPList"
        ),
        AttackClass(
            "rate_limit", "Rate limit exceeded", 2, 2, "volume", "RATE_BASED rules, custom names: rate"
        ),
        AttackClass(
            "ip_match", "IP list match", 2, 2, "reputation", "custom IP_MATCH rules (deny/watch lists)"
        ),
        AttackClass(
            "geo_match",
            "Geo match",
            2,
            1,
            "reputation",
            "GEO_MATCH: a block is policy; counting is only tagging",
        ),
        AttackClass("ddos_suspect", "Suspected DDoS", 1, 2, "volume", "Anti-DDoS medium suspicion label"),
        AttackClass(
            "login_anomaly", "Login anomaly", 1, 2, "fraud", "ATP SignalMissingCredential, TokenRejected"
        ),
        AttackClass("bot_targeted", "Targeted bot", 1, 2, "bot", "Bot Control TGT_* (coordinated sessions)"),
        AttackClass(
            "bot", "Bot traffic", 1, 1, "bot", "Bot Control Category* rules (their labels alone are identity)"
        ),
        AttackClass(
            "bot_signal",
            "Bot signal",
            1,
            1,
            "bot",
            "SignalNonBrowserUserAgent, ACFP AutomatedBrowser / BrowserInconsistency",
        ),
        AttackClass(
            "challenge", "CAPTCHA or challenge", 1, 1, "bot", "CAPTCHA/CHALLENGE action, ChallengeAll..."
        ),
        AttackClass(
            "unsupported_request", "Unsupported request", 1, 1, "bot", "ATP/ACFP UnsupportedCognitoIDP"
        ),
        AttackClass(
            "default_block", "Default block", 1, None, "none", "no rule matched, web ACL default BLOCK"
        ),
        AttackClass(
            "unknown_action",
            "Unrecognized WAF action",
            1,
            1,
            "none",
            "no rule matched, action not recognized",
        ),
        AttackClass("none", "None", None, 0, "none", "no rule matched, default ALLOW"),
        AttackClass(
            "unknown",
            "Unclassified rule match",
            UNKNOWN_BLOCKED_SEVERITY,
            UNKNOWN_REACHED_SEVERITY,
            "none",
            "documented default for unrecognized rules",
        ),
        AttackClass(
            "allow_rule",
            "Allow-listed request",
            None,
            0,
            "none",
            "an explicit ALLOW rule that is not an attack signature",
        ),
    )
}
UNKNOWN = CLASSES["unknown"]


def severity_table() -> str:
    """The severity table as Markdown, for the README (a test keeps them equal)."""

    def grade(value: int | None) -> str:
        return "-" if value is None else str(value)

    rows = [
        "| class | what the operator reads | blocked | reached | kind | rules, labels, names |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows += [
        f"| `{c.name}` | {c.title} | {grade(c.blocked)} | {grade(c.reached)} | {c.kind} | {c.why} |"
        for c in CLASSES.values()
    ]
    return "\n".join(rows)


# ---- managed rule groups ---------------------------------------------------------------

CRS = "awsmanagedrulescommonruleset"
ADMIN = "awsmanagedrulesadminprotectionruleset"
KBI = "awsmanagedrulesknownbadinputsruleset"
SQLI = "awsmanagedrulessqliruleset"
LINUX = "awsmanagedruleslinuxruleset"
UNIX = "awsmanagedrulesunixruleset"
WINDOWS = "awsmanagedruleswindowsruleset"
PHP = "awsmanagedrulesphpruleset"
WORDPRESS = "awsmanagedruleswordpressruleset"
IP_REPUTATION = "awsmanagedrulesamazonipreputationlist"
ANONYMOUS = "awsmanagedrulesanonymousiplist"
BOT = "awsmanagedrulesbotcontrolruleset"
ATP = "awsmanagedrulesatpruleset"
ACFP = "awsmanagedrulesacfpruleset"
ANTI_DDOS = "awsmanagedrulesantiddosruleset"

# Group -> class when the inner rule is unknown (a simplified event naming only the
# group, or a rule added after this table was written). Where a group mixes grades the
# lower reached grade is used (WordPress paths 4, not commands 5): a floor must not
# overstate.
GROUPS: dict[str, str] = {
    CRS: "common_web_attack",
    ADMIN: "admin_access",
    KBI: "known_bad_input",
    SQLI: "sqli",
    LINUX: "lfi",
    UNIX: "command_injection",
    WINDOWS: "command_injection",
    PHP: "php_exploit",
    WORDPRESS: "wordpress_path",
    IP_REPUTATION: "ip_reputation",
    ANONYMOUS: "anonymous_ip",
    BOT: "bot",
    ATP: "account_takeover",
    ACFP: "account_creation_fraud",
    ANTI_DDOS: "ddos",
}


@dataclass(frozen=True, slots=True)
class RuleEntry:
    prefix: str  # a key() prefix of the rule id (or of the rule part of a label)
    cls: str  # a CLASSES name
    groups: frozenset[str] | None = None  # None: applies whatever the group
    # A scoped entry also applies when the group is unknown (simplified events carry
    # only a rule name), unless strict: generic ids like "AllRequests" need the group.
    strict: bool = False
    # Key prefixes that look alike but are something else ("sqlite" is not "sqli").
    unless: tuple[str, ...] = ()


def _scoped(prefix: str, cls: str, *groups: str, strict: bool = False) -> RuleEntry:
    return RuleEntry(prefix, cls, frozenset(groups), strict)


# Managed rule ids (and the rule part of their labels, which AWS spells differently:
# UserAgent_BadBots_HEADER vs BadBots_Header). First match wins: specific first.
RULES: tuple[RuleEntry, ...] = (
    # Core rule set
    RuleEntry("nouseragent", "no_user_agent"),
    RuleEntry("useragentbadbots", "bad_bot_user_agent"),
    RuleEntry("badbots", "bad_bot_user_agent"),
    RuleEntry("sizerestrictions", "size_restriction"),
    RuleEntry("ec2metadatassrf", "ssrf"),
    RuleEntry("genericlfi", "lfi"),
    RuleEntry("genericrfi", "rfi"),
    RuleEntry("restrictedextensions", "sensitive_file_access"),
    RuleEntry("crosssitescripting", "xss"),
    # Admin protection: probing for admin pages is an attack step, not noise.
    RuleEntry("adminprotection", "admin_access"),
    # Known bad inputs
    RuleEntry("javadeserializationrce", "java_deserialization"),
    RuleEntry("log4jrce", "log4j"),
    RuleEntry("reactjsrce", "rce"),
    RuleEntry("hostlocalhost", "host_header"),
    RuleEntry("propfind", "webdav_probe"),
    RuleEntry("exploitablepaths", "exploitable_path"),
    # SQL database
    RuleEntry("sqli", "sqli", unless=("sqlite",)),
    # Linux, POSIX, Windows
    RuleEntry("lfi", "lfi"),
    RuleEntry("unixshellcommandsvariables", "command_injection"),
    RuleEntry("windowsshellcommands", "command_injection"),
    RuleEntry("powershellcommands", "command_injection"),
    # PHP, WordPress
    RuleEntry("phphighriskmethodsvariables", "php_exploit"),
    RuleEntry("wordpressexploitablecommands", "wordpress_exploit"),
    RuleEntry("wordpressexploitablepaths", "wordpress_path"),
    # Amazon IP reputation, anonymous IP
    RuleEntry("awsmanagedipreputationlist", "ip_reputation"),
    RuleEntry("awsmanagedreconnaissancelist", "ip_reputation"),
    RuleEntry("awsmanagedipddoslist", "ip_reputation"),
    RuleEntry("anonymousiplist", "anonymous_ip"),
    RuleEntry("hostingprovideriplist", "anonymous_ip"),
    # Bot Control (common and targeted)
    RuleEntry("tgt", "bot_targeted", frozenset({BOT})),
    RuleEntry("signalnonbrowseruseragent", "bot_signal"),
    RuleEntry("signalautomatedbrowser", "bot_signal"),
    RuleEntry("signalknownbotdatacenter", "bot_signal"),
    _scoped("category", "bot", BOT),
    _scoped("signal", "bot_signal", BOT, strict=True),
    # ATP: a high rate of *successful* logins, or many compromised credentials, is
    # credential stuffing that may already have worked.
    RuleEntry("attributecompromisedcredentials", "credential_stuffing"),
    _scoped("volumetricipsuccessful", "credential_stuffing", ATP),
    _scoped("volumetricsessionsuccessful", "credential_stuffing", ATP),
    _scoped("signalmissingcredential", "login_anomaly", ATP),
    _scoped("tokenrejected", "login_anomaly", ATP),
    _scoped("unsupportedcognitoidp", "unsupported_request", ATP, ACFP),
    # ACFP
    RuleEntry("signalcredentialcompromised", "compromised_credential"),
    _scoped("riskscorehigh", "account_creation_fraud", ACFP),
    _scoped("signalclienthumaninteractivity", "bot_signal", ACFP),
    _scoped("automatedbrowser", "bot_signal", ACFP, strict=True),
    _scoped("browserinconsistency", "bot_signal", ACFP, strict=True),
    _scoped("allrequests", "challenge", ACFP, strict=True),
    _scoped("volumetric", "account_creation_fraud", ACFP, strict=True),
    _scoped("attribute", "account_creation_fraud", ACFP, strict=True),
    # ATP volumetric/attribute after ACFP's strict ones: with no group, ATP is assumed.
    _scoped("volumetric", "account_takeover", ATP),
    _scoped("attribute", "account_takeover", ATP),
    # Anti-DDoS: the two challenge rules are soft mitigation, DDoSRequests blocks.
    RuleEntry("challengeallduringevent", "challenge"),
    RuleEntry("challengeddosrequests", "challenge"),
    RuleEntry("ddosrequests", "ddos"),
)

# Match details of custom rules (``conditionType``). REGEX_MATCH, BYTE_MATCH and the
# like say *how* a rule matched, not what it found, so they fall through to the name.
CONDITION_TYPES: dict[str, str] = {
    "sqlinjection": "sqli",
    "sqli": "sqli",
    "xss": "xss",
    "crosssitescripting": "xss",
    "sizeconstraint": "size_restriction",
    "geomatch": "geo_match",
    "ipmatch": "ip_match",
    "ipsetreference": "ip_match",
    "ratebased": "rate_limit",
}

# ---- labels ----------------------------------------------------------------------------

# ``awswaf:managed:aws:<namespace>:...`` -> the group whose rule ids the label carries.
LABEL_NAMESPACES: dict[str, str] = {
    "core-rule-set": CRS,
    "sql-database": SQLI,
    "known-bad-inputs": KBI,
    "linux-os": LINUX,
    "posix-os": UNIX,
    "windows-os": WINDOWS,
    "php-app": PHP,
    "wordpress-app": WORDPRESS,
    "admin-protection": ADMIN,
    "amazon-ip-list": IP_REPUTATION,
    "anonymous-ip-list": ANONYMOUS,
    "bot-control": BOT,
    "atp": ATP,
    "acfp": ACFP,
    "anti-ddos": ANTI_DDOS,
}

#: Marks a label that describes the request without being a finding.
INFORMATIONAL = ""

# Namespaces whose labels are a taxonomy rather than rule ids: (namespace, key prefix
# of the rest of the label, class). First match wins; "" marks informational labels.
# A scoped rule id of the namespace's group (``acfp:AutomatedBrowser``) is tried
# before the namespace's catch-all (the entry with an empty prefix).
LABEL_PATTERNS: tuple[tuple[str, str, str], ...] = (
    # Bot Control: a bot's identity is not a finding. It labels every bot it recognizes
    # with its category and name, verified or not; an unverified bot is what a Category*
    # rule acts on, and that rule match (in the record's rule groups) is the finding.
    # A verified bot gets bot:verified and no signal labels (AWS WAF Developer Guide,
    # "Bot Control example: Explicitly allowing verified bots").
    ("bot-control", "botverified", INFORMATIONAL),
    ("bot-control", "botname", INFORMATIONAL),
    ("bot-control", "botcategory", INFORMATIONAL),
    ("bot-control", "botdeveloperplatform", INFORMATIONAL),
    ("bot-control", "botusertriggered", INFORMATIONAL),
    ("bot-control", "botwebbotauth", INFORMATIONAL),
    ("bot-control", "webbotauthverified", INFORMATIONAL),
    ("bot-control", "botvendor", INFORMATIONAL),
    ("bot-control", "targeted", "bot_targeted"),
    ("bot-control", "signal", "bot_signal"),
    ("bot-control", "", "bot"),
    # ATP
    ("atp", "signalcredentialcompromised", "compromised_credential"),
    ("atp", "aggregateattributecompromisedcredentials", "credential_stuffing"),
    ("atp", "aggregatevolumetricipsuccessful", "credential_stuffing"),
    ("atp", "aggregatevolumetricsessionsuccessful", "credential_stuffing"),
    ("atp", "signalmissingcredential", "login_anomaly"),
    ("atp", "unsupported", INFORMATIONAL),
    ("atp", "", "account_takeover"),
    # ACFP: every evaluated request gets a risk score; only "high" is a finding.
    ("acfp", "riskscorehigh", "account_creation_fraud"),
    ("acfp", "riskscore", INFORMATIONAL),
    ("acfp", "signalcredentialcompromised", "compromised_credential"),
    ("acfp", "signal", "bot_signal"),
    ("acfp", "unsupported", INFORMATIONAL),
    ("acfp", "", "account_creation_fraud"),
    # Anti-DDoS: event-detected and challengeable-request label *every* request during
    # an event; only the suspicion levels single this request out.
    ("anti-ddos", "highsuspicionddosrequest", "ddos"),
    ("anti-ddos", "ddosrequest", "ddos"),
    ("anti-ddos", "mediumsuspicionddosrequest", "ddos_suspect"),
    ("anti-ddos", "", INFORMATIONAL),
)

# ---- rule-name tokens (custom rules) ---------------------------------------------------

# Patterns over the key() of a name (separators removed): distinctive spellings.
NAME_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), cls)
    for pattern, cls in (
        (r"sqli(?!te)|sqlinjection", "sqli"),
        (r"xss|crosssite", "xss"),
        (r"log4j|log4shell|jndi", "log4j"),
        (r"spring4shell|springshell", "spring4shell"),
        (r"deseriali[sz]", "java_deserialization"),
        (r"commandinjection|cmdinjection|oscommand|shell", "command_injection"),
        (r"remotecode|codeexec|cve\d{8,}", "rce"),
        (r"templateinjection", "ssti"),
        (r"xmlexternalentit", "xxe"),
        (r"ssrf|ec2metadata|instancemetadata", "ssrf"),
        (r"remotefileinclu", "rfi"),
        (r"localfileinclu", "lfi"),
        (r"traversal|dotdot", "path_traversal"),
        (
            r"dotenv|envfile|dotgit|gitconfig|gitfolder|gitdir|gitrepo|htaccess|htpasswd|svnentries",
            "sensitive_file_access",
        ),
        (r"graphqlintrospection|introspection", "exploitable_path"),
        (r"adminpanel|adminpage|adminpath|adminlogin|adminprob|phpmyadmin", "admin_access"),
        (r"wordpress|xmlrpc|wplogin|wpadmin", "wordpress_attack"),
        (r"php", "php_attack"),
        (r"credentialstuffing|bruteforce|accounttakeover", "account_takeover"),
        (r"badbot|scanner", "bad_bot_user_agent"),
        (r"nouseragent|useragent", "no_user_agent"),
        (r"sizerestriction|sizelimit|sizeconstraint|oversize|toolarge", "size_restriction"),
        (r"iprep|reputation|blocklist|blacklist|denylist|badip", "ip_reputation"),
        (r"ipset|iplist|ipmatch|ipblock|blockip|ipdeny|denyip", "ip_match"),
        (r"anonymous|hostingprovider", "anonymous_ip"),
        (r"ratelimit|ratebased|throttl", "rate_limit"),
        (r"geoblock|geomatch|geofenc|georestrict", "geo_match"),
        (r"ddos", "ddos"),
        (r"captcha|challenge", "challenge"),
    )
)

# Short tokens that are only meaningful as whole words ("rce" is inside "source").
NAME_WORDS: dict[str, str] = {
    "sql": "sqli",
    "rce": "rce",
    "cve": "rce",
    "lfi": "lfi",
    "rfi": "rfi",
    "xxe": "xxe",
    "ssti": "ssti",
    "ssrf": "ssrf",
    "cmd": "command_injection",
    "cmdi": "command_injection",
    "git": "sensitive_file_access",
    "graphql": "exploitable_path",
    "wp": "wordpress_attack",
    "admin": "admin_access",
    "rate": "rate_limit",
    "bot": "bot",
    "bots": "bot",
    "geo": "geo_match",
    "tor": "anonymous_ip",
    "vpn": "anonymous_ip",
    "ato": "account_takeover",
    "dos": "ddos",
    "size": "size_restriction",
}

# A rule named so is an operator's allow decision, not a detection.
ALLOW_WORDS = frozenset({"allow", "allowlist", "whitelist", "permit"})
