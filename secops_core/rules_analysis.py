"""The analysis written without a model: the floor is the severity, the text is templated.

The runtime's ``rules`` provider answers with it, and the worker decides with it when a
model cannot (docs/architecture.md, "Severity").
"""

from __future__ import annotations

from secops_core.contract import Analysis, SeverityFloorInfo, WafEvent
from secops_core.text import sanitize_text

RULES_PROVIDER = "rules"
# Operators read these in a console and in notifications: long enough for a paragraph,
# short enough that a model cannot paste a payload essay into an alert.
ANALYSIS_TEXT_CHARS = 4000
ATTACK_TYPE_CHARS = 120
# Text the rules provider quotes from the request (target, source) or the floor.
_RULES_TARGET_CHARS = 200
_RULES_FIELD_CHARS = 120
_RULES_REASON_CHARS = 500

# The attack classes of ``severity.py``, in words an operator reads. A class missing here
# still gets a readable name from its identifier.
_ATTACK_TYPES = {
    "sqli": "SQL injection",
    "xss": "Cross-site scripting",
    "lfi": "Local file inclusion",
    "rfi": "Remote file inclusion",
    "path_traversal": "Path traversal",
    "ssrf": "Server-side request forgery (EC2 metadata)",
    "sensitive_file_access": "Sensitive file access",
    "host_header": "Host header attack",
    "webdav_probe": "WebDAV probe",
    "exploitable_path": "Exploitable path probe",
    "known_bad_input": "Known bad input",
    "common_web_attack": "Common web attack",
    "wordpress_path": "WordPress path probe",
    "wordpress_attack": "WordPress attack",
    "php_attack": "PHP attack",
    "log4j": "Log4j remote code execution",
    "java_deserialization": "Java deserialization remote code execution",
    "spring4shell": "Spring4Shell remote code execution",
    "command_injection": "Shell command injection",
    "rce": "Remote code execution",
    "php_exploit": "PHP exploit",
    "wordpress_exploit": "WordPress exploit",
    "credential_stuffing": "Credential stuffing",
    "compromised_credential": "Compromised credential",
    "admin_access": "Admin page access",
    "account_takeover": "Account takeover attempt",
    "account_creation_fraud": "Account creation fraud",
    "ddos": "DDoS",
    "ddos_suspect": "Suspected DDoS",
    "bad_bot_user_agent": "Bad bot user agent",
    "no_user_agent": "Missing user agent",
    "size_restriction": "Oversized request",
    "ip_reputation": "IP reputation",
    "anonymous_ip": "Anonymous IP",
    "rate_limit": "Rate limit exceeded",
    "ip_match": "IP list match",
    "geo_match": "Geo match",
    "login_anomaly": "Login anomaly",
    "bot_targeted": "Targeted bot",
    "bot": "Bot traffic",
    "bot_signal": "Bot signal",
    "challenge": "CAPTCHA or challenge",
    "unsupported_request": "Unsupported request",
    "default_block": "Default block",
    "unknown_action": "Unrecognized WAF action",
    "allow_rule": "Allow-listed request",
    "none": "None",
    "unknown": "Unclassified rule match",
}

_RCE_CHECK = "look for signs of compromise on the host (new processes, outbound connections)"
_FILE_CHECK = "check that no file path is built from request input"
_WORDPRESS_CHECK = "check that WordPress core and plugins are patched"
_PHP_CHECK = "check that PHP and its modules are patched"
_GENERIC_CHECK = "check the application logs around it for errors or unusual responses"

# Attack classes (an attack payload; blocked is still an attempt) and what to check in
# the application when one of them reached it.
_ATTACK_CHECKS = {
    "sqli": "check that the targeted parameter is bound with parameterized queries",
    "xss": "check that the reflected value is output-encoded and that a Content-Security-Policy is in place",
    "lfi": _FILE_CHECK,
    "rfi": "check that the application never includes or fetches a URL taken from the request",
    "path_traversal": _FILE_CHECK,
    "ssrf": "check that IMDSv2 is enforced and that the application never fetches a URL from the request",
    "sensitive_file_access": "check that no backup, log or configuration file is served from the web root",
    "host_header": "check that the application does not build links or redirects from the Host header",
    "webdav_probe": "check that WebDAV is disabled on the web server",
    "exploitable_path": "check that administrative and debug paths are not exposed",
    "known_bad_input": _GENERIC_CHECK,
    "common_web_attack": _GENERIC_CHECK,
    "wordpress_path": _WORDPRESS_CHECK,
    "wordpress_attack": _WORDPRESS_CHECK,
    "wordpress_exploit": f"{_WORDPRESS_CHECK} and {_RCE_CHECK}",
    "php_attack": _PHP_CHECK,
    "php_exploit": f"{_PHP_CHECK} and {_RCE_CHECK}",
    "log4j": f"check that every Java service behind this host runs a patched Log4j and {_RCE_CHECK}",
    "java_deserialization": f"check that the service never deserializes request data and {_RCE_CHECK}",
    "spring4shell": f"check that Spring Framework is patched (CVE-2022-22965) and {_RCE_CHECK}",
    "command_injection": f"check that no shell command is built from request input and {_RCE_CHECK}",
    "rce": f"patch the targeted component and {_RCE_CHECK}",
    "credential_stuffing": (
        "check which logins from this source succeeded, reset those passwords and consider MFA"
    ),
}

# Non-attack classes with something specific to check when the request got through.
_REACHED_CHECKS = {
    "compromised_credential": "check whether the login succeeded and reset that credential if it did",
    "account_takeover": "check whether the login succeeded and reset that credential if it did",
    "account_creation_fraud": "review the accounts created from this source",
    "admin_access": "check that the admin path requires authentication and is not public",
}

_REACHED_ACTIONS = frozenset({"ALLOW", "COUNT"})
_COUNT_ACTIONS = frozenset({"COUNT", "EXCLUDED_AS_COUNT"})
_CHALLENGE_ACTIONS = frozenset({"CAPTCHA", "CHALLENGE"})


def _attack_type(attack_class: str) -> str:
    key = attack_class.strip().lower()
    if key in _ATTACK_TYPES:
        return _ATTACK_TYPES[key]
    readable = sanitize_text(key.replace("_", " ").replace("-", " "), ATTACK_TYPE_CHARS)
    return readable.capitalize() or _ATTACK_TYPES["unknown"]


def _target(event: WafEvent) -> str:
    method = sanitize_text(event.http_method or "", _RULES_FIELD_CHARS)
    host = sanitize_text(event.host or "", _RULES_FIELD_CHARS)
    uri = sanitize_text(event.uri, _RULES_TARGET_CHARS)
    return " ".join(part for part in (method, f"{host}{uri}") if part)


def _source(event: WafEvent) -> str:
    ip = sanitize_text(event.source_ip, _RULES_FIELD_CHARS)
    country = sanitize_text(event.country or "", _RULES_FIELD_CHARS)
    return f"{ip} ({country})" if country else ip


def _request_ref(event: WafEvent) -> str:
    if event.request_id:
        return f"request id {sanitize_text(event.request_id, _RULES_FIELD_CHARS)}"
    return f"requests from {_source(event)} at {event.timestamp.isoformat()}"


def _was_counted(event: WafEvent) -> bool:
    """True when a rule matched in COUNT mode: the request went on to the application."""
    return event.action.upper() == "COUNT" or any(
        match.action.upper() in _COUNT_ACTIONS for match in event.matches
    )


def _disposition(event: WafEvent) -> str:
    action = event.action.upper()
    if action in _REACHED_ACTIONS:
        return f"WAF action {action}: the request reached the application"
    if action in _CHALLENGE_ACTIONS:
        return f"WAF action {action}: the client had to pass a {action.lower()} first"
    return f"WAF action {sanitize_text(action, _RULES_FIELD_CHARS)}: the request was stopped"


def _follow_up(event: WafEvent, floor: SeverityFloorInfo) -> str:
    attack_class = floor.attack_class.strip().lower()
    action = event.action.upper()
    rule = sanitize_text(floor.rule, _RULES_FIELD_CHARS)
    reached = action in _REACHED_ACTIONS
    check = _ATTACK_CHECKS.get(attack_class) or _REACHED_CHECKS.get(attack_class)
    if reached and check:
        steps = [f"Review the application logs for {_request_ref(event)}", check]
        if _was_counted(event):
            steps.append(f"consider switching rule {rule} from COUNT to BLOCK")
        else:
            steps.append(
                f"find out why rule {rule} did not block it (rule action, scope-down statement, "
                "an earlier allow rule) and consider making it BLOCK"
            )
        return "; ".join(steps) + "."
    if attack_class in _ATTACK_CHECKS:
        return (
            f"No action needed for this request: WAF stopped it. The monitor escalates if "
            f"{_source(event)} keeps sending it; if the source keeps probing, consider adding it "
            "to a blocking IP set."
        )
    if attack_class == "none":
        return "No action needed: no rule matched and the default action allowed the request."
    if floor.severity == 0:
        return "No action needed: the web ACL's own allow rule admitted the request."
    if attack_class == "unknown":
        return (
            f"Classify rule {rule} (managed group, rule type or naming) so its events get a "
            "meaningful severity, then review whether this request was legitimate."
        )
    if action in _CHALLENGE_ACTIONS or floor.severity <= 1:
        return "No action needed; review bot-control metrics if the volume from this source grows."
    if reached:
        return (
            f"Check whether traffic from {_source(event)} is legitimate; if not, consider "
            f"switching rule {rule} to BLOCK."
        )
    return (
        f"No action needed unless legitimate clients are affected; check rule {rule} for false "
        f"positives if {_source(event)} is a known client."
    )


def rules_analysis(event: WafEvent, floor: SeverityFloorInfo, degraded: bool = False) -> Analysis:
    """Analyze without a model: the floor is the severity, the text is templated.

    ``degraded`` marks an analysis made because the configured model failed.
    """
    rule = sanitize_text(floor.rule, _RULES_FIELD_CHARS)
    reason = sanitize_text(floor.reason, _RULES_REASON_CHARS).rstrip(".")
    attack_type = _attack_type(floor.attack_class)
    if floor.attack_class.strip().lower() == "none":
        matched = f"No rule matched {_target(event)} from {_source(event)}."
    else:
        matched = f"{attack_type}: rule {rule} matched {_target(event)} from {_source(event)}."
    analysis = (
        f"{matched} {_disposition(event)}. Severity {floor.severity} (deterministic floor): "
        f"{reason}. Assessed by rules, without a model."
    )
    return Analysis(
        severity_rating=floor.severity,
        severity_floor=floor.severity,
        model_severity=None,
        security_analysis=sanitize_text(analysis, ANALYSIS_TEXT_CHARS),
        follow_up_suggestion=sanitize_text(_follow_up(event, floor), ANALYSIS_TEXT_CHARS),
        attack_type=attack_type,
        analyzed_by=RULES_PROVIDER,
        floor=floor,
        degraded=degraded,
    )
