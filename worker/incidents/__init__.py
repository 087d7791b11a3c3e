"""Incidents: many escalated events of one attack, one record, one page per milestone.

- :mod:`.grouping`: which events belong together (the grouping key);
- :mod:`.records`: the incident record and how a batch of events folds into it;
- :mod:`.milestones`: which crossings are worth a notification, each with a stable id;
- :mod:`.repo`: the repository port and the join every backend shares;
  :mod:`.memory` and :mod:`.dynamodb` are the backends;
- :mod:`.joiner`: group commit, so a flood costs one incident write per batch;
- :mod:`.factory`: the worker's joiner from its settings.
"""

from __future__ import annotations

from worker.incidents.dynamodb import DynamoIncidentRepo
from worker.incidents.grouping import GROUP_BY_CHOICES, GroupBy, GroupKey, group_key
from worker.incidents.joiner import EventJoin, IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.incidents.milestones import OPENED, RESOLVED, Milestone, crossed
from worker.incidents.records import INCIDENT_STATUSES, Contribution, IncidentRecord, IncidentStatus
from worker.incidents.repo import (
    Crossing,
    IncidentNotFound,
    IncidentRepo,
    JoinResult,
    StatusConflict,
)

__all__ = [
    "GROUP_BY_CHOICES",
    "INCIDENT_STATUSES",
    "OPENED",
    "RESOLVED",
    "Contribution",
    "Crossing",
    "DynamoIncidentRepo",
    "EventJoin",
    "GroupBy",
    "GroupKey",
    "IncidentJoiner",
    "IncidentNotFound",
    "IncidentRecord",
    "IncidentRepo",
    "IncidentStatus",
    "JoinResult",
    "MemoryIncidentRepo",
    "Milestone",
    "StatusConflict",
    "crossed",
    "group_key",
]
