"""The deterministic severity floor (DESIGN.md section 3).

``severity_floor(event)`` grades a normalized ``WafEvent`` from what the WAF itself
recorded: the terminating rule, every matched rule, the labels and the action. The
security analyst may raise the result, never lower it, so the floor must be cheap,
explainable and *total*: every possible ``WafEvent`` gets a grade and nothing raises.

Disposition: what happened to the request decides how a match is graded.

- ``BLOCK``                 -> blocked: it did not reach the application.
- ``ALLOW`` / ``COUNT``     -> reached: a match that was only counted (COUNT,
  EXCLUDED_AS_COUNT, or a CAPTCHA/CHALLENGE whose token was valid) reached the app.
- ``CAPTCHA`` / ``CHALLENGE`` -> interrupted: the client got an interstitial instead of
  the application. Volumetric, bot and reputation matches grade 1 (that is what these
  soft mitigations are for); an attack-class match grades as *blocked* (3), because a
  payload that was stopped by an interstitial is still an attack attempt, and grading
  it below an outright block would reward the softer action.
- anything else             -> unknown: graded as reached, the conservative choice.

Severity table (blocked / reached). "attack" classes keep their blocked grade when the
request was interrupted by a CAPTCHA/CHALLENGE.

=======================  ====  =====  ======  ============================================
attack_class             blk   reach  attack  rule ids / labels / why
=======================  ====  =====  ======  ============================================
sqli                     3     4      yes     SQLi_*, SQLiExtendedPatterns_* (sql-database)
xss                      3     4      yes     CrossSiteScripting_* (core-rule-set)
lfi                      3     4      yes     GenericLFI_* (CRS), LFI_* (linux-os)
rfi                      3     4      yes     GenericRFI_* (CRS)
path_traversal           3     4      yes     custom rules named "traversal", "dotdot"
ssrf                     3     4      yes     EC2MetaDataSSRF_*: can leak instance creds
sensitive_file_access    3     4      yes     RestrictedExtensions_* (.log, .ini, .bak ...)
host_header              3     4      yes     Host_localhost_HEADER (known-bad-inputs)
webdav_probe             3     4      yes     PROPFIND_METHOD (known-bad-inputs)
exploitable_path         3     4      yes     ExploitablePaths_URIPATH (known-bad-inputs)
known_bad_input          3     4      yes     known-bad-inputs group, inner rule unknown
common_web_attack        3     4      yes     core rule set group, inner rule unknown
wordpress_path           3     4      yes     WordPressExploitablePaths_URIPATH, WP group
wordpress_attack         3     4      yes     custom rules named "wordpress", "wp", ...
php_attack               3     4      yes     custom rules named "php"
log4j                    3     5      yes     Log4JRCE_* (Log4Shell, CVE-2021-44228)
java_deserialization     3     5      yes     JavaDeserializationRCE_* (incl. Spring Core)
spring4shell             3     5      yes     custom rules named "spring4shell"
command_injection        3     5      yes     UNIXShellCommandsVariables_*,
                                              WindowsShellCommands_*, PowerShellCommands_*
rce                      3     5      yes     custom rules named "rce", "remote code"
php_exploit              3     5      yes     PHPHighRiskMethodsVariables_* (php-app)
wordpress_exploit        3     5      yes     WordPressExploitableCommands_*
credential_stuffing      3     4      yes     ATP AttributeCompromisedCredentials, high
                                              successful-login volume (ATO likely worked)
compromised_credential   2     3      no      single leaked credential (ATP/ACFP signal)
admin_access             2     3      no      AdminProtection_URIPATH: probing blocked is
                                              noise; an outsider reaching admin is watched
account_takeover         2     3      no      ATP volumetric / attribute rules
account_creation_fraud   2     3      no      ACFP rules (RiskScoreHigh, volumetric ...)
ddos                     2     3      no      Anti-DDoS DDoSRequests, high suspicion
bad_bot_user_agent       2     3      no      UserAgent_BadBots_HEADER: a scanner (nmap,
                                              nessus) that got through is worth watching
no_user_agent            2     2      no      NoUserAgent_HEADER
size_restriction         2     2      no      SizeRestrictions_*, SIZE_CONSTRAINT
ip_reputation            2     2      no      AWSManagedIPReputationList,
                                              AWSManagedReconnaissanceList,
                                              AWSManagedIPDDoSList, custom deny lists
anonymous_ip             2     2      no      AnonymousIPList, HostingProviderIPList
rate_limit               2     2      no      RATE_BASED rules, custom "rate" rules
ip_match                 2     2      no      custom IP_MATCH rules (deny/watch lists)
geo_match                2     1      no      GEO_MATCH: a block is policy; counting is
                                              only tagging traffic
ddos_suspect             1     2      no      Anti-DDoS medium suspicion label
login_anomaly            1     2      no      ATP SignalMissingCredential, TokenRejected
bot_targeted             1     2      no      Bot Control TGT_* (coordinated/automated
                                              sessions that got through are above noise)
bot                      1     1      no      Bot Control Category*, bot:category:*
bot_signal               1     1      no      SignalNonBrowserUserAgent, signal:*
challenge                1     1      no      CAPTCHA/CHALLENGE action, ChallengeAll...
unsupported_request      1     1      no      ATP/ACFP UnsupportedCognitoIDP
default_block            1     -      no      no rule matched, web ACL default BLOCK
unknown_action           1     1      no      no rule matched, action not recognized
none                     -     0      no      no rule matched, default ALLOW
unknown                  2     3      no      documented default for unrecognized rules:
                                              something matched; if it reached the app,
                                              let the monitor watch it
allow_rule               -     0      no      an explicit ALLOW rule (allow list) that is
                                              not an attack signature
=======================  ====  =====  ======  ============================================

Classification order for one matched rule (first hit wins):

1. ``_RULES``: managed rule-id prefixes, compared case- and separator-insensitively
   (``SQLi_BODY`` == ``SQLi_Body`` == ``sqli-body``). Ambiguous ids (``VolumetricIpHigh``
   exists in ATP and ACFP) are scoped to their rule group.
2. ``_CONDITION_TYPES``: match details of custom rules (SQL_INJECTION, XSS, ...).
3. ``_GROUPS``: the managed rule group (or a rule name that *is* a group name).
4. ``_NAME_PATTERNS`` / ``_NAME_WORDS``: well-known tokens in the rule name (case- and
   separator-insensitive; short ones like "rce" only as whole words), then the group's.
5. Otherwise the ``unknown`` default above.

An explicit allow rule (the terminating rule of a native log whose action is ALLOW, or
a rule whose name starts with "allow"/"allowlist"/"whitelist") is an operator decision,
not a detection: its name tokens are not trusted ("Allow-wp-cron" is not a WordPress
exploit) and non-attack classes grade 0. An attack signature that an operator allowed
still reached the application and keeps its reached grade.

Labels are graded by namespace (``_LABEL_NAMESPACES``); token labels
(``awswaf:managed:token:*``), geo labels (``awswaf:clientip:*``) and informational
labels (``bot:verified``, ``event-detected`` ...) never raise the floor, and a custom
label counts only when its name has a recognized token (the rule that added it is in
the matches anyway). The floor is the maximum over all findings.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

from secops_core.contract import RuleMatch, SeverityFloorInfo, WafEvent
from secops_core.limits import MAX_ID_CHARS

__all__ = ["UNKNOWN_BLOCKED_SEVERITY", "UNKNOWN_REACHED_SEVERITY", "severity_floor"]


@dataclass(frozen=True, slots=True)
class _Class:
    name: str
    title: str
    blocked: int
    reached: int
    # Injection/exploit signatures: an interstitial does not make them harmless.
    attack: bool = False


def _classes(*items: _Class) -> dict[str, _Class]:
    return {item.name: item for item in items}


# The severity table of the module docstring, as data.
_CLASSES: dict[str, _Class] = _classes(
    _Class("sqli", "SQL injection", 3, 4, attack=True),
    _Class("xss", "Cross-site scripting", 3, 4, attack=True),
    _Class("lfi", "Local file inclusion", 3, 4, attack=True),
    _Class("rfi", "Remote file inclusion", 3, 4, attack=True),
    _Class("path_traversal", "Path traversal", 3, 4, attack=True),
    _Class("ssrf", "Server-side request forgery (EC2 metadata)", 3, 4, attack=True),
    _Class("sensitive_file_access", "Restricted file extension", 3, 4, attack=True),
    _Class("host_header", "Host header localhost", 3, 4, attack=True),
    _Class("webdav_probe", "WebDAV PROPFIND", 3, 4, attack=True),
    _Class("exploitable_path", "Exploitable path", 3, 4, attack=True),
    _Class("known_bad_input", "Known bad input", 3, 4, attack=True),
    _Class("common_web_attack", "Core rule set", 3, 4, attack=True),
    _Class("wordpress_path", "WordPress exploitable path", 3, 4, attack=True),
    _Class("wordpress_attack", "WordPress attack", 3, 4, attack=True),
    _Class("php_attack", "PHP attack", 3, 4, attack=True),
    _Class("log4j", "Log4J remote code execution", 3, 5, attack=True),
    _Class("java_deserialization", "Java deserialization remote code execution", 3, 5, True),
    _Class("spring4shell", "Spring4Shell remote code execution", 3, 5, attack=True),
    _Class("command_injection", "OS command injection", 3, 5, attack=True),
    _Class("rce", "Remote code execution", 3, 5, attack=True),
    _Class("php_exploit", "PHP high-risk method", 3, 5, attack=True),
    _Class("wordpress_exploit", "WordPress exploitable command", 3, 5, attack=True),
    _Class("credential_stuffing", "Credential stuffing", 3, 4, attack=True),
    _Class("compromised_credential", "Compromised credential", 2, 3),
    _Class("admin_access", "Admin path", 2, 3),
    _Class("account_takeover", "Account takeover prevention", 2, 3),
    _Class("account_creation_fraud", "Account creation fraud", 2, 3),
    _Class("ddos", "DDoS", 2, 3),
    _Class("bad_bot_user_agent", "Bad bot user agent", 2, 3),
    _Class("no_user_agent", "Missing user agent", 2, 2),
    _Class("size_restriction", "Size restriction", 2, 2),
    _Class("ip_reputation", "IP reputation", 2, 2),
    _Class("anonymous_ip", "Anonymous IP", 2, 2),
    _Class("rate_limit", "Rate-based", 2, 2),
    _Class("ip_match", "IP match", 2, 2),
    _Class("geo_match", "Geographic match", 2, 1),
    _Class("ddos_suspect", "Suspected DDoS", 1, 2),
    _Class("login_anomaly", "Login anomaly", 1, 2),
    _Class("bot_targeted", "Bot Control targeted", 1, 2),
    _Class("bot", "Bot Control category", 1, 1),
    _Class("bot_signal", "Bot Control signal", 1, 1),
    _Class("challenge", "CAPTCHA/challenge", 1, 1),
    _Class("unsupported_request", "Unsupported request", 1, 1),
)

#: Documented default for a rule nothing here recognizes.
UNKNOWN_BLOCKED_SEVERITY = 2
UNKNOWN_REACHED_SEVERITY = 3
_UNKNOWN = _Class("unknown", "Unrecognized", UNKNOWN_BLOCKED_SEVERITY, UNKNOWN_REACHED_SEVERITY)


def _key(text: str) -> str:
    """Case- and separator-insensitive key: ``SQLi_Body`` and ``sqli-BODY`` -> ``sqlibody``."""
    return "".join(ch for ch in text.lower() if ch.isascii() and ch.isalnum())


# ---- managed rule groups ---------------------------------------------------------------

_CRS = "awsmanagedrulescommonruleset"
_ADMIN = "awsmanagedrulesadminprotectionruleset"
_KBI = "awsmanagedrulesknownbadinputsruleset"
_SQLI = "awsmanagedrulessqliruleset"
_LINUX = "awsmanagedruleslinuxruleset"
_UNIX = "awsmanagedrulesunixruleset"
_WINDOWS = "awsmanagedruleswindowsruleset"
_PHP = "awsmanagedrulesphpruleset"
_WORDPRESS = "awsmanagedruleswordpressruleset"
_IP_REPUTATION = "awsmanagedrulesamazonipreputationlist"
_ANONYMOUS = "awsmanagedrulesanonymousiplist"
_BOT = "awsmanagedrulesbotcontrolruleset"
_ATP = "awsmanagedrulesatpruleset"
_ACFP = "awsmanagedrulesacfpruleset"
_ANTI_DDOS = "awsmanagedrulesantiddosruleset"

# Group -> class when the inner rule is unknown (a simplified event naming only the
# group, or a rule added to the group after this table was written). The class is the
# group's dominant one; where the group mixes grades, the lower reached grade is used
# (WordPress paths 4, not commands 5) because a floor must not overstate.
_GROUPS: dict[str, str] = {
    _CRS: "common_web_attack",
    _ADMIN: "admin_access",
    _KBI: "known_bad_input",
    _SQLI: "sqli",
    _LINUX: "lfi",
    _UNIX: "command_injection",
    _WINDOWS: "command_injection",
    _PHP: "php_exploit",
    _WORDPRESS: "wordpress_path",
    _IP_REPUTATION: "ip_reputation",
    _ANONYMOUS: "anonymous_ip",
    _BOT: "bot",
    _ATP: "account_takeover",
    _ACFP: "account_creation_fraud",
    _ANTI_DDOS: "ddos",
}


@dataclass(frozen=True, slots=True)
class _RuleEntry:
    prefix: str  # a _key() prefix of the rule id (or of the rule part of a label)
    cls: str  # a _CLASSES name
    groups: frozenset[str] | None = None  # None: applies whatever the group
    # A scoped entry also applies when the group is unknown (simplified events carry
    # only a rule name), unless strict: generic ids like "AllRequests" need the group.
    strict: bool = False
    # Key prefixes that look alike but are something else ("sqlite" is not "sqli").
    unless: tuple[str, ...] = ()


def _scoped(prefix: str, cls: str, *groups: str, strict: bool = False) -> _RuleEntry:
    return _RuleEntry(prefix, cls, frozenset(groups), strict)


# Managed rule ids (and the rule part of their labels, which AWS spells differently:
# UserAgent_BadBots_HEADER vs BadBots_Header, Host_localhost_HEADER vs
# Host_Localhost_Header). First match wins, so specific prefixes come first.
_RULES: tuple[_RuleEntry, ...] = (
    # Core rule set (AWSManagedRulesCommonRuleSet)
    _RuleEntry("nouseragent", "no_user_agent"),
    _RuleEntry("useragentbadbots", "bad_bot_user_agent"),
    _RuleEntry("badbots", "bad_bot_user_agent"),
    _RuleEntry("sizerestrictions", "size_restriction"),
    _RuleEntry("ec2metadatassrf", "ssrf"),
    _RuleEntry("genericlfi", "lfi"),
    _RuleEntry("genericrfi", "rfi"),
    _RuleEntry("restrictedextensions", "sensitive_file_access"),
    _RuleEntry("crosssitescripting", "xss"),
    # Admin protection
    _RuleEntry("adminprotection", "admin_access"),
    # Known bad inputs
    _RuleEntry("javadeserializationrce", "java_deserialization"),
    _RuleEntry("log4jrce", "log4j"),
    _RuleEntry("hostlocalhost", "host_header"),
    _RuleEntry("propfind", "webdav_probe"),
    _RuleEntry("exploitablepaths", "exploitable_path"),
    # SQL database (SQLi_*, SQLiExtendedPatterns_*)
    _RuleEntry("sqli", "sqli", unless=("sqlite",)),
    # Linux (LFI_URIPATH, LFI_QUERYSTRING, LFI_HEADER), POSIX, Windows
    _RuleEntry("lfi", "lfi"),
    _RuleEntry("unixshellcommandsvariables", "command_injection"),
    _RuleEntry("windowsshellcommands", "command_injection"),
    _RuleEntry("powershellcommands", "command_injection"),
    # PHP, WordPress
    _RuleEntry("phphighriskmethodsvariables", "php_exploit"),
    _RuleEntry("wordpressexploitablecommands", "wordpress_exploit"),
    _RuleEntry("wordpressexploitablepaths", "wordpress_path"),
    # Amazon IP reputation, anonymous IP
    _RuleEntry("awsmanagedipreputationlist", "ip_reputation"),
    _RuleEntry("awsmanagedreconnaissancelist", "ip_reputation"),
    _RuleEntry("awsmanagedipddoslist", "ip_reputation"),
    _RuleEntry("anonymousiplist", "anonymous_ip"),
    _RuleEntry("hostingprovideriplist", "anonymous_ip"),
    # Bot Control (common and targeted)
    _RuleEntry("tgt", "bot_targeted", frozenset({_BOT})),
    _RuleEntry("signalnonbrowseruseragent", "bot_signal"),
    _RuleEntry("signalautomatedbrowser", "bot_signal"),
    _RuleEntry("signalknownbotdatacenter", "bot_signal"),
    _scoped("category", "bot", _BOT),
    _scoped("signal", "bot_signal", _BOT, strict=True),
    # ATP: an IP/session with a high rate of *successful* logins, or many compromised
    # credentials, is credential stuffing that may already have worked.
    _RuleEntry("attributecompromisedcredentials", "credential_stuffing"),
    _scoped("volumetricipsuccessful", "credential_stuffing", _ATP),
    _scoped("volumetricsessionsuccessful", "credential_stuffing", _ATP),
    _scoped("signalmissingcredential", "login_anomaly", _ATP),
    _scoped("tokenrejected", "login_anomaly", _ATP),
    _scoped("unsupportedcognitoidp", "unsupported_request", _ATP, _ACFP),
    # ACFP
    _RuleEntry("signalcredentialcompromised", "compromised_credential"),
    _scoped("riskscorehigh", "account_creation_fraud", _ACFP),
    _scoped("signalclienthumaninteractivity", "bot_signal", _ACFP),
    _scoped("automatedbrowser", "bot_signal", _ACFP, strict=True),
    _scoped("browserinconsistency", "bot_signal", _ACFP, strict=True),
    _scoped("allrequests", "challenge", _ACFP, strict=True),
    _scoped("volumetric", "account_creation_fraud", _ACFP, strict=True),
    _scoped("attribute", "account_creation_fraud", _ACFP, strict=True),
    # ATP volumetric/attribute after ACFP's strict ones: with no group, ATP is assumed.
    _scoped("volumetric", "account_takeover", _ATP),
    _scoped("attribute", "account_takeover", _ATP),
    # Anti-DDoS: the two challenge rules are soft mitigation, DDoSRequests blocks.
    _RuleEntry("challengeallduringevent", "challenge"),
    _RuleEntry("challengeddosrequests", "challenge"),
    _RuleEntry("ddosrequests", "ddos"),
)

# Match details of custom rules (``terminatingRuleMatchDetails[].conditionType``).
# REGEX_MATCH, BYTE_MATCH and the like say *how* a rule matched, not what it found, so
# they fall through to the rule name.
_CONDITION_TYPES: dict[str, str] = {
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
_LABEL_NAMESPACES: dict[str, str] = {
    "core-rule-set": _CRS,
    "sql-database": _SQLI,
    "known-bad-inputs": _KBI,
    "linux-os": _LINUX,
    "posix-os": _UNIX,
    "windows-os": _WINDOWS,
    "php-app": _PHP,
    "wordpress-app": _WORDPRESS,
    "admin-protection": _ADMIN,
    "amazon-ip-list": _IP_REPUTATION,
    "anonymous-ip-list": _ANONYMOUS,
    "bot-control": _BOT,
    "atp": _ATP,
    "acfp": _ACFP,
    "anti-ddos": _ANTI_DDOS,
}

# Marks a label that describes the request without being a finding.
_INFORMATIONAL = ""

# Namespaces whose labels are a taxonomy rather than rule ids: (namespace, key prefix
# of the rest of the label, class). First match wins; "" marks informational labels.
_LABEL_PATTERNS: tuple[tuple[str, str, str], ...] = (
    # Bot Control: verified bots and bot names are identity, not a finding.
    ("bot-control", "botverified", _INFORMATIONAL),
    ("bot-control", "botname", _INFORMATIONAL),
    ("bot-control", "botdeveloperplatform", _INFORMATIONAL),
    ("bot-control", "botusertriggered", _INFORMATIONAL),
    ("bot-control", "botwebbotauth", _INFORMATIONAL),
    ("bot-control", "botcategory", "bot"),
    ("bot-control", "targeted", "bot_targeted"),
    ("bot-control", "signal", "bot_signal"),
    ("bot-control", "", "bot"),
    # ATP
    ("atp", "signalcredentialcompromised", "compromised_credential"),
    ("atp", "aggregateattributecompromisedcredentials", "credential_stuffing"),
    ("atp", "aggregatevolumetricipsuccessful", "credential_stuffing"),
    ("atp", "aggregatevolumetricsessionsuccessful", "credential_stuffing"),
    ("atp", "signalmissingcredential", "login_anomaly"),
    ("atp", "unsupported", _INFORMATIONAL),
    ("atp", "", "account_takeover"),
    # ACFP: every evaluated request gets a risk score; only "high" is a finding.
    ("acfp", "riskscorehigh", "account_creation_fraud"),
    ("acfp", "riskscore", _INFORMATIONAL),
    ("acfp", "signalcredentialcompromised", "compromised_credential"),
    ("acfp", "signal", "bot_signal"),
    ("acfp", "unsupported", _INFORMATIONAL),
    ("acfp", "", "account_creation_fraud"),
    # Anti-DDoS: event-detected and challengeable-request label *every* request during
    # an event; only the suspicion levels single this request out.
    ("anti-ddos", "highsuspicionddosrequest", "ddos"),
    ("anti-ddos", "ddosrequest", "ddos"),
    ("anti-ddos", "mediumsuspicionddosrequest", "ddos_suspect"),
    ("anti-ddos", "", _INFORMATIONAL),
)

# ---- rule-name tokens (custom rules) ---------------------------------------------------

# Patterns over the _key() of a name (separators removed): distinctive spellings.
_NAME_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), cls)
    for pattern, cls in (
        (r"sqli(?!te)|sqlinjection", "sqli"),
        (r"xss|crosssite", "xss"),
        (r"log4j|log4shell|jndi", "log4j"),
        (r"spring4shell|springshell", "spring4shell"),
        (r"deseriali[sz]", "java_deserialization"),
        (r"commandinjection|cmdinjection|oscommand|shell", "command_injection"),
        (r"remotecode", "rce"),
        (r"ssrf|ec2metadata|instancemetadata", "ssrf"),
        (r"remotefileinclu", "rfi"),
        (r"localfileinclu", "lfi"),
        (r"traversal|dotdot", "path_traversal"),
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
_NAME_WORDS: dict[str, str] = {
    "sql": "sqli",
    "rce": "rce",
    "lfi": "lfi",
    "rfi": "rfi",
    "cmd": "command_injection",
    "cmdi": "command_injection",
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

_ALLOW_WORDS = frozenset({"allow", "allowlist", "whitelist", "permit"})
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z][a-z]+|[a-z]+|[0-9]+")


def _words(name: str) -> list[str]:
    """Split on separators and camelCase: ``RateLimit-1000`` -> rate, limit, 1000."""
    return [word.lower() for word in _WORD_RE.findall(name)]


def _name_classes(name: str) -> list[str]:
    key = _key(name)
    found = [cls for pattern, cls in _NAME_PATTERNS if pattern.search(key)]
    found += [_NAME_WORDS[word] for word in _words(name) if word in _NAME_WORDS]
    return list(dict.fromkeys(found))


# ---- normalization ---------------------------------------------------------------------

_REASON_NAME_CHARS = 120
_VENDOR_PREFIXES = ("aws#", "aws-")


def _clean(text: object, limit: int = MAX_ID_CHARS) -> str:
    """Printable, trimmed, bounded text: rule names travel on the wire and into logs."""
    raw = text if isinstance(text, str) else ("" if text is None else str(text))
    printable = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in raw[: limit * 4])
    cleaned = " ".join(printable.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _display_group(group: object) -> str:
    """Group name without vendor prefix or version: ``AWS#X#Version_2.0`` -> ``X``."""
    text = _clean(group)
    stripped = True
    while stripped:
        stripped = False
        for prefix in _VENDOR_PREFIXES:
            if text.lower().startswith(prefix):
                text, stripped = text[len(prefix) :], True
    return text.split("#", 1)[0].strip()


class _Disposition(Enum):
    BLOCKED = "blocked"
    REACHED = "reached"
    INTERRUPTED = "interrupted"
    UNKNOWN = "unknown"


_COUNTED = frozenset({"COUNT", "EXCLUDED_AS_COUNT"})
_INTERSTITIAL = frozenset({"CAPTCHA", "CHALLENGE"})


def _disposition(action: str) -> _Disposition:
    if action == "BLOCK":
        return _Disposition.BLOCKED
    if action in {"ALLOW", "COUNT"}:
        return _Disposition.REACHED
    if action in _INTERSTITIAL:
        return _Disposition.INTERRUPTED
    return _Disposition.UNKNOWN


def _is_default(rule_name: str) -> bool:
    return _key(rule_name) in {"", "defaultaction", "default"}


def _is_label(name: str) -> bool:
    return name.lower().startswith("awswaf:")


# ---- classification --------------------------------------------------------------------


def _rule_entry(rule_key: str, group_key: str) -> _RuleEntry | None:
    for entry in _RULES:
        if not rule_key.startswith(entry.prefix) or rule_key.startswith(entry.unless):
            continue
        if entry.groups is None or group_key in entry.groups:
            return entry
        if not group_key and not entry.strict:
            return entry
    return None


def _classify(
    rule_id: str, group: str, condition_types: tuple[str, ...], *, use_names: bool
) -> list[str] | None:
    """Classes for one matched rule, or None when nothing recognizes it."""
    rule_key, group_key = _key(rule_id), _key(_display_group(group))
    entry = _rule_entry(rule_key, group_key) if rule_key else None
    if entry is not None:
        return [entry.cls]
    by_condition = [_CONDITION_TYPES[_key(ct)] for ct in condition_types if _key(ct) in _CONDITION_TYPES]
    if by_condition:
        return list(dict.fromkeys(by_condition))
    for candidate in (group_key, _key(_display_group(rule_id))):
        if candidate in _GROUPS:
            return [_GROUPS[candidate]]
    if use_names:
        by_name = _name_classes(rule_id) or _name_classes(group)
        if by_name:
            return by_name
    return None


def _classify_label(label: str) -> list[str]:
    """Classes for a label; [] when it is informational or says nothing we know."""
    parts = label.split(":")
    lowered = [part.lower() for part in parts]
    if len(parts) < 2 or lowered[0] != "awswaf":
        return _name_classes(parts[-1])
    if lowered[1] in {"clientip", "forwardedip"}:
        return []  # geo labels WAF adds to every request
    if lowered[1] != "managed":
        # awswaf:<account>:webacl|rulegroup:<name>:<label...>: the custom rule that
        # added it is among the matches; only a telling name adds anything.
        return _name_classes(":".join(parts[4:]) or parts[-1])
    if len(parts) < 4 or lowered[2] != "aws":
        # awswaf:managed:token|captcha|challenge:* are token state, not a match;
        # third-party vendors (awswaf:managed:<vendor>:...) by name only.
        if lowered[2:3] and lowered[2] in {"token", "captcha", "challenge"}:
            return []
        return _name_classes(":".join(parts[3:]))
    namespace, rest = lowered[3], ":".join(parts[4:])
    rest_key = _key(rest)
    for pattern_ns, prefix, cls in _LABEL_PATTERNS:
        if pattern_ns == namespace and rest_key.startswith(prefix):
            return [cls] if cls else []
    group_key = _LABEL_NAMESPACES.get(namespace)
    if group_key is None:
        return _name_classes(rest)
    entry = _rule_entry(rest_key, group_key) if rest_key else None
    if entry is not None:
        return [entry.cls]
    return [_GROUPS[group_key]]


# ---- grading ---------------------------------------------------------------------------


def _grade(cls: _Class, disposition: _Disposition, match_action: str) -> int:
    if disposition is _Disposition.BLOCKED:
        return cls.blocked
    if disposition is _Disposition.INTERRUPTED:
        return cls.blocked if cls.attack else min(cls.blocked, 1)
    # Reached (or an unknown action, graded as reached). A non-terminating CAPTCHA or
    # CHALLENGE match means the client held a valid token: it proved itself, which
    # answers a bot/volumetric concern but not an injected payload.
    if match_action in _INTERSTITIAL and not cls.attack:
        return min(cls.reached, 1)
    return cls.reached


def _outcome(disposition: _Disposition, action: str, match_action: str) -> str:
    if disposition is _Disposition.BLOCKED:
        return "blocked, so it did not reach the application"
    if disposition is _Disposition.INTERRUPTED:
        return f"answered with a {action} instead, so it did not reach the application"
    if disposition is _Disposition.UNKNOWN:
        return (
            f"handled with the unrecognized action {_clean(action, 40)!r}, so it is "
            "treated as having reached the application"
        )
    if match_action in _COUNTED:
        return "allowed (counted), so it reached the application"
    if match_action in _INTERSTITIAL:
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


def _short(text: str) -> str:
    return _clean(text, _REASON_NAME_CHARS)


@dataclass(frozen=True, slots=True)
class _Signal:
    """One matched rule, wherever the event recorded it."""

    rule_id: str
    group: str
    action: str
    condition_types: tuple[str, ...]
    explicit_allow: bool


def _rule_findings(signal: _Signal, disposition: _Disposition, action: str) -> list[_Finding]:
    group = _display_group(signal.group)
    rule_id = _clean(signal.rule_id)
    rule = _clean(f"{group}:{rule_id}" if group else rule_id)
    shown = _short(f"{group}/{rule_id}" if group else rule_id)
    outcome = _outcome(disposition, action, signal.action)
    classes = _classify(rule_id, group, signal.condition_types, use_names=not signal.explicit_allow)
    if classes is None:
        if signal.explicit_allow:
            return [
                _Finding(
                    0,
                    "allow_rule",
                    f"Allow rule {shown} explicitly allowed the request, an allow-list "
                    "decision rather than a detection",
                    rule,
                    1,
                )
            ]
        severity = _grade(_UNKNOWN, disposition, signal.action)
        return [
            _Finding(
                severity,
                _UNKNOWN.name,
                f"Unrecognized rule {shown} matched and the request was {outcome}; "
                f"unrecognized rules get a floor of {UNKNOWN_BLOCKED_SEVERITY} when "
                f"blocked and {UNKNOWN_REACHED_SEVERITY} when they reach the application",
                rule,
                1,
            )
        ]
    findings = []
    for name in classes:
        cls = _CLASSES[name]
        severity = _grade(cls, disposition, signal.action)
        reason = f"{cls.title} rule {shown} matched and the request was {outcome}"
        if signal.explicit_allow and not cls.attack:
            severity = 0
            reason = (
                f"{cls.title} rule {shown} explicitly allowed the request, an allow-list "
                "decision rather than a detection"
            )
        findings.append(_Finding(severity, cls.name, reason, rule, 3))
    return findings


def _label_findings(label: str, disposition: _Disposition, action: str) -> list[_Finding]:
    cleaned = _clean(label)
    classes = _classify_label(cleaned)
    outcome = _outcome(disposition, action, "")
    return [
        _Finding(
            _grade(_CLASSES[name], disposition, ""),
            name,
            f"{_CLASSES[name].title} label {_short(cleaned)} was present and the request was {outcome}",
            cleaned,
            2,
        )
        for name in classes
    ]


def _signals(event: WafEvent, action: str, *, rate_based: bool) -> list[_Signal]:
    rule_name = _clean(event.rule_name)
    group = _clean(event.rule_group)
    signals: list[_Signal] = []
    # The terminating rule usually appears among the matches too, with its group and
    # match details: that record speaks for it. A rate-based terminating rule is graded
    # as such by the caller; its free-form name must not add an "unrecognized rule"
    # grade on top.
    logged = any(
        match.terminating and _key(_clean(match.rule_id)) == _key(rule_name) for match in event.matches
    )
    if not (logged or rate_based or _is_default(rule_name) or _is_label(rule_name)):
        if ":" in rule_name and not group:
            # "AWSManagedRulesSQLiRuleSet:SQLi_BODY" (the shape of our own ``rule``).
            group, rule_name = rule_name.rsplit(":", 1)
        words = _words(rule_name)
        named_allow = bool(words) and words[0] in _ALLOW_WORDS
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
    match_action = _clean(match.action, 40).upper()
    words = _words(_clean(match.rule_id))
    allow_rule = match_action == "ALLOW" and (
        bool(match.terminating) or (bool(words) and words[0] in _ALLOW_WORDS)
    )
    return _Signal(
        _clean(match.rule_id),
        _clean(match.rule_group or fallback_group),
        match_action,
        tuple(_clean(ct, 64) for ct in (match.condition_types or ())),
        explicit_allow=allow_rule,
    )


def severity_floor(event: WafEvent) -> SeverityFloorInfo:
    """Grade a WAF event from its rules, labels and action; total and side-effect free.

    Every matched rule (the terminating one, non-terminating COUNT / EXCLUDED_AS_COUNT
    matches) and every label is graded with the request's disposition (blocked,
    reached the application, interrupted by CAPTCHA/CHALLENGE), and the highest grade
    wins. Unrecognized rules get ``UNKNOWN_BLOCKED_SEVERITY`` (2) when blocked and
    ``UNKNOWN_REACHED_SEVERITY`` (3) when they reached the application. The severity
    table and its rationale are in this module's docstring.
    """
    action = _clean(event.action, 40).upper()
    disposition = _disposition(action)
    rule_name = _clean(event.rule_name) or "Default_Action"
    findings: list[_Finding] = []

    rate_based = _clean(event.terminating_rule_type, 40).upper() == "RATE_BASED"
    if rate_based:
        rate = _CLASSES["rate_limit"]
        findings.append(
            _Finding(
                _grade(rate, disposition, action),
                rate.name,
                f"Rate-based rule {_short(rule_name)} matched and the request was "
                f"{_outcome(disposition, action, action)}",
                rule_name,
                3,
            )
        )
    for signal in _signals(event, action, rate_based=rate_based):
        findings.extend(_rule_findings(signal, disposition, action))
    # A simplified event may name the deciding label instead of a rule.
    labels = (rule_name, *event.labels) if _is_label(rule_name) else event.labels
    for label in labels:
        findings.extend(_label_findings(label, disposition, action))

    if disposition is _Disposition.INTERRUPTED:
        findings.append(
            _Finding(
                1,
                "challenge",
                f"The request was answered with a {action} by rule {_short(rule_name)}, "
                "so it did not reach the application",
                rule_name,
                0,
            )
        )
    elif not findings or _is_default(rule_name):
        findings.append(_baseline(disposition, action, rule_name))

    best = max(enumerate(findings), key=lambda item: (item[1].severity, item[1].rank, -item[0]))
    finding = best[1]
    return SeverityFloorInfo(
        severity=max(0, min(5, finding.severity)),
        attack_class=finding.attack_class,
        reason=finding.reason + ".",
        rule=finding.rule or rule_name,
    )


def _baseline(disposition: _Disposition, action: str, rule: str) -> _Finding:
    if disposition is _Disposition.REACHED:
        reason = "No rule matched and the web ACL's default action allowed the request"
        return _Finding(0, "none", reason, rule, 0)
    if disposition is _Disposition.BLOCKED:
        reason = (
            "No rule matched and the web ACL's default action blocked the request, so it "
            "did not reach the application"
        )
        return _Finding(1, "default_block", reason, rule, 0)
    reason = f"No rule matched and the action {_clean(action, 40)!r} is not recognized"
    return _Finding(1, "unknown_action", reason, rule, 0)
