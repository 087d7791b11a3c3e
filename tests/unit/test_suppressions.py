"""Suppressions in memory: what a scope may be, which events it covers, and the worker's
cache of them (docs/architecture.md, "Suppressions")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from secops_core.ingest.normalize import normalize_event
from secops_core.waf.floor import explain_floor
from testkit.events import simplified, waf_record
from tests.fixtures.fakes import FakeClock
from worker.errors import RetryableError
from worker.suppressions import Scope, ScopeError, Suppression
from worker.suppressions.cache import SuppressionCache
from worker.suppressions.matching import cover
from worker.suppressions.memory import MemorySuppressionRepo

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def coverage(scope: Scope, payload: dict[str, Any]) -> Any:
    event = normalize_event(payload)
    return cover(scope, event, explain_floor(event)[1])


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"uri_template": "/a"}, "a rule or a label"),
        ({"rule": "SQLi_BODY"}, "at least one of"),
        ({"rule": "SQLi_BODY", "web_acl": "acl"}, "at least one of"),
        ({"label": "not-a-label", "host": "a.example"}, "not a WAF label"),
        ({"rule": "SQLi_BODY", "source_cidr": "10.0.0.300/8"}, "not an IP network"),
        ({"rule": "SQLi_BODY", "colour": "red"}, "unknown scope field"),
    ],
)
def test_a_scope_needs_a_rule_or_label_and_something_narrower(values: dict[str, str], problem: str) -> None:
    # GIVEN a scope an operator wrote / WHEN it is built / THEN it is refused, saying why
    with pytest.raises(ScopeError, match=problem):
        Scope.build(**values)


def test_a_scope_is_normalized_as_events_are() -> None:
    # GIVEN a scope written loosely / WHEN it is built
    scope = Scope.build(
        rule="SQLi_BODY", uri_template="/api/orders/123/", method="post", host="Shop.Example.com"
    )
    prefix = Scope.build(rule="SQLi_BODY", uri_template="/static*", source_cidr="10.1.2.3/8")
    # THEN its URI is a template, its method and host are canonical, its network strict
    assert (scope.uri_template, scope.method, scope.host) == ("/api/orders/{n}", "POST", "shop.example.com")
    assert (prefix.uri_template, prefix.source_cidr) == ("/static/*", "10.0.0.0/8")


def test_the_rule_its_own_label_and_its_group_are_in_scope() -> None:
    # GIVEN a counted SQLi match on /products with the rule's own label
    payload = waf_record(counted=True, uri="/products/42")
    # WHEN scopes name the rule, the group-qualified rule, the label, or another rule
    # THEN the first three cover it, the others do not
    assert coverage(Scope.build(rule="SQLi_QueryArguments", uri_template="/products/{n}"), payload).suppresses
    assert coverage(
        Scope.build(rule="AWSManagedRulesSQLiRuleSet:SQLi_QUERYARGUMENTS", uri_template="/products/*"),
        payload,
    ).suppresses
    assert coverage(
        Scope.build(label="awswaf:managed:aws:sql-database:SQLi_QueryArguments", method="GET"), payload
    ).suppresses
    assert not coverage(
        Scope.build(rule="AWSManagedRulesCommonRuleSet:SQLi_QUERYARGUMENTS", method="GET"), payload
    ).suppresses
    assert not coverage(Scope.build(rule="SQLi_BODY", method="GET"), payload).touches


@pytest.mark.parametrize(
    ("narrowing", "covered"),
    [
        ({"uri_template": "/products"}, True),
        ({"uri_template": "/product"}, False),
        ({"method": "POST"}, False),
        ({"host": "*.example.com"}, True),
        ({"host": "example.com"}, False),
        ({"source_cidr": "203.0.113.0/24"}, True),
        ({"source_cidr": "2001:db8::/32"}, False),
        ({"uri_template": "/products", "web_acl": "other-acl"}, False),
    ],
)
def test_every_narrowing_field_must_hold(narrowing: dict[str, str], covered: bool) -> None:
    # GIVEN a counted SQLi match on shop.example.com/products from 203.0.113.10
    payload = waf_record(counted=True)
    # WHEN a scope of that rule narrows it by one field / THEN it covers it when the field holds
    assert coverage(Scope.build(rule="SQLi_QueryArguments", **narrowing), payload).suppresses is covered


def test_a_second_finding_outside_the_scope_keeps_the_event() -> None:
    # GIVEN the counted SQLi match plus a cross-site scripting label
    payload = waf_record(counted=True)
    payload["labels"].append({"name": "awswaf:managed:aws:core-rule-set:CrossSiteScripting_Body"})
    # WHEN the SQLi rule's scope is checked
    result = coverage(Scope.build(rule="SQLi_QueryArguments", uri_template="/products"), payload)
    # THEN the rule is in scope but the event is not suppressed: XSS is outside it
    assert result.touches and not result.suppresses
    assert [f.attack_class for f in result.outside] == ["xss"]


def test_a_simplified_event_is_covered_by_its_rule_name() -> None:
    # GIVEN a simplified event naming its rule
    payload = simplified("e1", action="ALLOW", rule_name="SQLi_BODY", uri="/search")
    # WHEN a scope names the rule and the path / THEN it covers the event
    assert coverage(Scope.build(rule="sqli-body", uri_template="/search"), payload).suppresses


class FailingRepo(MemorySuppressionRepo):
    failing = False

    def list(self, *, with_hits: bool = True) -> list[Suppression]:
        if self.failing:
            raise RetryableError("store down", reason="store_unavailable")
        return super().list(with_hits=with_hits)


def test_the_cache_keeps_its_list_when_a_refresh_fails_and_expiry_needs_no_refresh() -> None:
    clock = FakeClock(T0.timestamp())
    repo = FailingRepo()
    cache = SuppressionCache(repo, refresh_s=10, clock=clock)
    scope = Scope.build(rule="SQLi_QueryArguments", uri_template="/products")
    repo.create(
        Suppression.new(scope, reason="ours", created_by="alice", now=T0, expires_in=timedelta(seconds=25))
    )
    event = normalize_event(waf_record(counted=True))
    # GIVEN the cache read the suppression
    assert cache.match(event) is not None
    # WHEN the store fails at the next refresh
    repo.failing = True
    clock.advance(10)
    # THEN the last list still applies
    assert cache.match(event) is not None
    # ... until the suppression expires, which the cache sees without a refresh
    clock.advance(15)
    assert cache.match(event) is None


def test_a_suppression_needs_a_reason_and_a_future_expiry() -> None:
    scope = Scope.build(rule="SQLi_BODY", method="POST")
    with pytest.raises(ScopeError, match="reason"):
        Suppression.new(scope, reason=" ", created_by="a", now=T0, expires_in=None)
    with pytest.raises(ScopeError, match="future"):
        Suppression.new(scope, reason="x", created_by="a", now=T0, expires_in=timedelta(0))
