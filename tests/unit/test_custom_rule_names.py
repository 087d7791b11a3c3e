"""Custom rule names: tokenization and the grades issue 11 asks for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from secops_core.contract import WafEvent
from secops_core.waf.floor import severity_floor
from secops_core.waf.names import words
from secops_core.waf.operator import EMPTY


def _event(action: str, rule_name: str) -> WafEvent:
    return WafEvent(
        event_key="evt#t",
        source_format="simplified",
        timestamp=datetime.now(UTC),
        source_ip="203.0.113.7",
        uri="/",
        action=action,
        rule_name=rule_name,
    )


@pytest.mark.parametrize(
    ("name", "tokens"),
    [
        ("ReactJSRCE_Custom", ["react", "js", "rce", "custom"]),
        ("RateLimit-1000", ["rate", "limit", "1000"]),
        ("BlockSSTI", ["block", "ssti"]),
        ("LegacyAPIXSS", ["legacy", "api", "xss"]),
        ("source-check", ["source", "check"]),
        ("block_env.git files", ["block", "env", "git", "files"]),
    ],
)
def test_words_split_camel_case_acronyms_digits_and_suffixes(name: str, tokens: list[str]) -> None:
    # GIVEN a custom rule name WHEN tokenized THEN separators, case and suffixes split it
    assert words(name) == tokens


# (name, class, blocked, reached): RCE 3/5, attack 3/4, admin probing 3/4.
CUSTOM = [
    ("ReactJSRCE_Custom", "rce", 3, 5),
    ("CVE-2025-55182-nextjs-rsc", "rce", 3, 5),
    ("block-cve-2021-44228", "rce", 3, 5),
    ("LegacySQLi", "sqli", 3, 4),
    ("blockXSS", "xss", 3, 4),
    ("block-xxe", "xxe", 3, 4),
    ("BlockSSTI", "ssti", 3, 5),
    ("deny-ssrf-metadata", "ssrf", 3, 4),
    ("block-env-git-files", "sensitive_file_access", 3, 4),
    ("BlockDotEnv", "sensitive_file_access", 3, 4),
    ("block-graphql-introspection", "exploitable_path", 3, 4),
    ("AdminPanelBlock", "admin_access", 3, 4),
    ("phpmyadmin-probe", "admin_access", 3, 4),
]


@pytest.mark.parametrize(("name", "cls", "blocked", "reached"), CUSTOM)
def test_custom_names_grade_by_policy(name: str, cls: str, blocked: int, reached: int) -> None:
    # GIVEN a custom rule known only by its name
    # WHEN it blocked, and when it only counted
    blocked_floor = severity_floor(_event("BLOCK", name), EMPTY)
    counted_floor = severity_floor(_event("COUNT", name), EMPTY)
    # THEN its class grades it, from its name (or the managed id it embeds), not the default
    assert (blocked_floor.attack_class, blocked_floor.severity) == (cls, blocked)
    assert (counted_floor.attack_class, counted_floor.severity) == (cls, reached)
    assert counted_floor.floor_reason is not None
    assert counted_floor.floor_reason.source in {"name", "rule"}


@pytest.mark.parametrize("name", ["prod-env-rate", "MyCustomRule", "resource-guard", "gitlab-webhook"])
def test_names_that_only_look_alike_keep_their_reading(name: str) -> None:
    # GIVEN names holding "env", "rce" or "git" inside other words
    floor = severity_floor(_event("COUNT", name), EMPTY)
    # WHEN graded THEN none of them is read as a sensitive-file or RCE rule
    assert floor.attack_class not in {"sensitive_file_access", "rce"}


def test_unknown_name_takes_the_documented_default() -> None:
    # GIVEN a name with no known token WHEN graded THEN 2 blocked / 3 reached
    assert severity_floor(_event("BLOCK", "rule-17"), EMPTY).severity == 2
    reached = severity_floor(_event("COUNT", "rule-17"), EMPTY)
    assert (reached.severity, reached.attack_class) == (3, "unknown")
    assert reached.floor_reason is not None
    assert reached.floor_reason.source == "default"
