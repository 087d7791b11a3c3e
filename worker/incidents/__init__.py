"""Incidents: many escalated events of one attack, one record, one page per milestone.

- :mod:`.grouping`: which events belong together (the grouping key);
- :mod:`.records`: the incident record and how a batch of events folds into it;
- :mod:`.milestones`: which crossings are worth a notification, each with a stable id;
- :mod:`.repo`: the join every backend shares (the port is :class:`worker.ports.IncidentRepo`),
  :mod:`.results` what it answers; :mod:`.memory` and :mod:`.dynamodb` are the backends,
  imported by name where they are built, never by this package;
- :mod:`.joiner`: group commit, so a flood costs one incident write per batch (over
  the port, so not re-exported here: this package's names are data the ports name);
- :mod:`.factory`: the worker's joiner from its settings.
"""

from __future__ import annotations

from worker.incidents.grouping import GROUP_BY_CHOICES, GroupBy, GroupKey, group_key
from worker.incidents.milestones import OPENED, RESOLVED, Milestone, crossed
from worker.incidents.records import INCIDENT_STATUSES, Contribution, IncidentRecord, IncidentStatus
from worker.incidents.results import Crossing, EventJoin, IncidentNotFound, JoinResult, StatusConflict

__all__ = [
    "GROUP_BY_CHOICES",
    "INCIDENT_STATUSES",
    "OPENED",
    "RESOLVED",
    "Contribution",
    "Crossing",
    "EventJoin",
    "GroupBy",
    "GroupKey",
    "IncidentNotFound",
    "IncidentRecord",
    "IncidentStatus",
    "JoinResult",
    "Milestone",
    "StatusConflict",
    "crossed",
    "group_key",
]
