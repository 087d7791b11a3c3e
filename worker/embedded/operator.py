"""The demo's operator's word (README "Suppressions" and "Tuning report"): a customer's
search request trips a counted SQL injection rule and opens an incident; the operator
resolves it as a false positive, which creates the narrowest suppression covering it;
the same request from other customers is then closed at its floor without a model call
or an incident; and the tuning report ranks the rules on the demo's stored events.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from worker.platform import clock

if TYPE_CHECKING:
    from worker.daemon import Worker

SEARCH = "/api/search"
# Customers of the shop (documentation range): the first one's requests open the incident.
CUSTOMERS = tuple(f"198.51.100.{n}" for n in range(120, 126))
FIRST_WAVE = 3
OPERATOR = "demo-operator"
_BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


def search_request(ip: str, n: int, at: datetime) -> str:
    """A customer's search (``q=name' or 'sku``) that SQLi_BODY, overridden to COUNT, matches."""
    return json.dumps(
        {
            "timestamp": int(at.timestamp() * 1000),
            "formatVersion": 1,
            "webaclId": "arn:aws:wafv2:us-east-1:<ACCOUNT_ID>:regional/webacl/shop-prod/demo",
            "terminatingRuleId": "Default_Action",
            "terminatingRuleType": "REGULAR",
            "action": "ALLOW",
            "terminatingRuleMatchDetails": [],
            "httpSourceName": "ALB",
            "httpSourceId": "<ACCOUNT_ID>-app/shop-alb/demo",
            "ruleGroupList": [
                {
                    "ruleGroupId": "AWS#AWSManagedRulesSQLiRuleSet",
                    "terminatingRule": None,
                    "nonTerminatingMatchingRules": [{"ruleId": "SQLi_BODY", "action": "COUNT"}],
                    "excludedRules": None,
                }
            ],
            "rateBasedRuleList": [],
            "nonTerminatingMatchingRules": [],
            "httpRequest": {
                "clientIp": ip,
                "country": "GB",
                "headers": [
                    {"name": "Host", "value": "shop.example.com"},
                    {"name": "User-Agent", "value": _BROWSER},
                    {"name": "Accept-Language", "value": "en-GB,en;q=0.9"},
                ],
                "uri": SEARCH,
                "args": "",
                "httpVersion": "HTTP/2.0",
                "httpMethod": "POST",
                "requestId": f"1-demo-search-{ip}-{n}",
            },
            "labels": [{"name": "awswaf:managed:aws:sql-database:SQLi_Body"}],
        }
    )


def first_wave() -> list[str]:
    """The first customer's searches, sent with the samples."""
    now = clock.now()
    return [search_request(CUSTOMERS[0], n, now - timedelta(minutes=10 - n)) for n in range(FIRST_WAVE)]


def operator_word(worker: Worker, incidents: list[Any]) -> dict[str, Any]:
    """Resolve the search incident as a false positive (the suppression, the unblock),
    send the other customers' searches through a second worker run, then report."""
    from worker.daemon import build_worker, run_worker
    from worker.incidents.factory import dynamo_repo
    from worker.response.records import person
    from worker.suppressions.dynamodb import DynamoSuppressionRepo
    from worker.suppressions.model import Suppression
    from worker.suppressions.preview import DEFAULT_DIMENSIONS, narrowest_scope, preview
    from worker.tuning.history import DynamoEventHistory

    settings, clients = worker.settings, worker.clients
    [incident] = [i for i in incidents if i.source == CUSTOMERS[0]]
    now = clock.now()
    history = list(
        DynamoEventHistory(settings.table_name, client=clients.dynamodb).iter_events(
            since=now - timedelta(days=7), until=now
        )
    )
    # What `secops incidents resolve ID --false-positive` does, step by step.
    proposal = narrowest_scope([r for r in history if r.incident_id == incident.id], DEFAULT_DIMENSIONS)
    seen = preview(proposal.scope, history)
    dynamo_repo(settings, client=clients.dynamodb).set_status(
        incident.id, "resolved", note="the shop's own search syntax", by=OPERATOR
    )
    unblocked = []
    if worker.blocker is not None:
        removed = worker.blocker.unblock_incident(
            incident.id, by=person(OPERATOR), reason="incident resolved as a false positive"
        )
        unblocked = [r.network for r in removed]
    repo = DynamoSuppressionRepo(settings.table_name, client=clients.dynamodb)
    suppression = repo.create(
        Suppression.new(
            proposal.scope,
            reason="the shop's own search syntax",
            created_by=OPERATOR,
            now=now,
            expires_in=timedelta(days=30),
            incident_id=incident.id,
        )
    )
    later = [search_request(ip, 0, clock.now()) for ip in CUSTOMERS[1:]]
    for body in later:
        clients.sqs.send_message(QueueUrl=worker.resources.queue_url, MessageBody=body)
    second = build_worker(settings, clients=clients, resources=worker.resources)
    outcomes: list[Any] = []
    second.consumer.on_outcome = outcomes.append
    run_worker(second, with_scheduler=False)
    records = worker.store.get_many([o.event_key for o in outcomes if o.event_key])
    counted = repo.get(suppression.id)
    return {
        "incident": incident.id,
        "scope": proposal.scope.to_dict(),
        "covers_incident_events": [proposal.covers, proposal.events],
        "would_have_matched": seen.would_match,
        "suppression": suppression.id,
        "unblocked": unblocked,
        "later_requests": len(later),
        "later_statuses": sorted(
            {(r.status, r.suppressed_by or "", r.incident_id or "") for r in records.values()}
        ),
        "hits": counted.hits if counted else 0,
        "tuning": tuning(worker, suppressions=repo.list()),
    }


def tuning(worker: Worker, *, suppressions: list[Any]) -> list[dict[str, Any]]:
    """`secops tune --since 7d` on the demo's stored events: its first rows."""
    from worker.cli.tune import tune
    from worker.tuning.history import DynamoEventHistory
    from worker.tuning.inputs import ReadTally, stored_events

    until = datetime.now(UTC)
    since = until - timedelta(days=7)
    history = DynamoEventHistory(worker.settings.table_name, client=worker.clients.dynamodb)
    events = stored_events(history, since=since, until=until, tally=ReadTally())
    _, view = tune(events, since=since, until=until, source="the demo's table", suppressions=suppressions)
    return [
        {
            "rank": row["rank"],
            "rule": row["rule"],
            "by_action": row["by_action"],
            "sources": row["distinct_sources"],
            "customer_like": row["clean_source_share"],
            "verdict": row["verdict"],
            "suppressions": [s["id"] for s in row["suppressions"]],
            "proposals": [p["title"] for p in row["proposals"] if p["validated"]],
        }
        for row in view["rules"][:6]
    ]


def print_operator(console: Console, s: dict[str, Any]) -> None:
    scope = " ".join(f"{k}={v}" for k, v in s["scope"].items())
    covered, events = s["covers_incident_events"]
    console.print(
        f"\n[bold]The operator's word[/]: incident {s['incident']} resolved as a false positive by "
        f"{OPERATOR}; suppression {s['suppression']} ({scope}) covers {covered} of its {events} events "
        f"and would have matched {s['would_have_matched']} stored events"
        + (f"; unblocked {', '.join(s['unblocked'])}" if s["unblocked"] else "")
    )
    statuses = ", ".join(status for status, _, _ in s["later_statuses"])
    console.print(
        f"{s['later_requests']} later searches from other customers: {statuses}, "
        f"no model call, no incident; the suppression counted {s['hits']} hits"
    )
    table = Table(title="secops tune --since 7d (the demo's stored events)", title_justify="left")
    for column in ("#", "rule", "BLOCK/COUNT", "sources", "customer-like", "verdict", "proposal"):
        table.add_column(column, overflow="fold")
    for row in s["tuning"]:
        actions = row["by_action"]
        table.add_row(
            str(row["rank"]),
            row["rule"],
            f"{actions.get('BLOCK', 0)}/{actions.get('COUNT', 0)}",
            str(row["sources"]),
            f"{row['customer_like']:.0%}",
            row["verdict"].replace("_", " ") + (" (suppressed)" if row["suppressions"] else ""),
            "; ".join(row["proposals"]) or "-",
        )
    console.print(table)
