"""Relevance: what a WAF record is worth, decided once, by the catalog that grades the floor.

docs/architecture.md, "Relevance". Three answers, from the floor and every finding that
competed for it (:func:`secops_core.waf.floor.explain_floor`), so the log filter, the
aggregation and the floor can never disagree:

- ``noise``: nothing the catalog calls a finding. No rule matched and the web ACL's
  default action allowed the request; or the only signals are informational: the geo
  labels a geo match rule adds to *every* request it inspects, a verified bot's identity
  (``bot:verified``, ``bot:name:*``, ``bot:category:*`` without a Bot Control rule
  acting), token and client-session labels, risk scores below high, an operator's
  labels of class ``none``. The floor is 0 and its class ``none``. Counted in the read,
  never stored.
- ``counted``: relevant, but it can never page. The floor is at most
  :data:`~secops_core.triage.CLOSE_MAX` (triage closes it) and every finding is one the
  catalog knows: a request blocked for its sender, rate or size (an IP list, a bot
  category, a rate or size limit), an interstitial, an explicit allow rule, a counted
  size restriction or bot signal. Counted in per-window aggregates.
- ``event``: it can be monitored or escalated (a floor of 3 or more, any attack class),
  or the catalog cannot vouch for it (an unrecognized rule or action). It gets the
  per-event state machine.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from secops_core.contract import SeverityFloorInfo, WafEvent
from secops_core.triage import CLOSE_MAX
from secops_core.waf.catalog import CLASSES
from secops_core.waf.floor import explain_floor
from secops_core.waf.operator import OperatorCatalog

# The class of a finding that says nothing: no rule matched, or an informational label.
NOTHING = "none"
# Classes the catalog cannot vouch for: an unrecognized rule, an unrecognized action.
UNCERTAIN = frozenset({"unknown", "unknown_action"})


class Relevance(enum.StrEnum):
    NOISE = "noise"
    COUNTED = "counted"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A record's relevance and the floor it was decided from."""

    relevance: Relevance
    floor: SeverityFloorInfo
    findings: tuple[SeverityFloorInfo, ...]


def decide(floor: SeverityFloorInfo, findings: Sequence[SeverityFloorInfo]) -> Relevance:
    """The relevance of a floor and the findings that competed for it."""
    if floor.severity == 0 and _class(floor) == NOTHING:
        return Relevance.NOISE
    if floor.severity > CLOSE_MAX:
        return Relevance.EVENT
    for finding in (floor, *findings):
        name = _class(finding)
        if name in UNCERTAIN or name not in CLASSES:
            return Relevance.EVENT
    return Relevance.COUNTED


def relevance(event: WafEvent, operator: OperatorCatalog | None = None) -> Verdict:
    """Grade ``event`` once and say what it is worth; total and side-effect free."""
    floor, findings = explain_floor(event, operator)
    return Verdict(decide(floor, findings), floor, tuple(findings))


def _class(finding: SeverityFloorInfo) -> str:
    return finding.attack_class.strip().lower()
