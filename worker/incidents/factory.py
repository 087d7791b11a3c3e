"""How the worker builds its incident joiner from its settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.incidents.dynamodb import DynamoIncidentRepo
from worker.incidents.joiner import IncidentJoiner
from worker.settings import Settings

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient


def dynamo_repo(settings: Settings, *, client: DynamoDBClient | None = None) -> DynamoIncidentRepo:
    """The incident repository over the store's table, configured from ``settings``
    (the worker's and the CLI's alike: a claim goes stale after the same time for both)."""
    return DynamoIncidentRepo(
        settings.table_name,
        client=client,
        ttl_days=settings.event_ttl_days,
        quiet_s=settings.incident_quiet_s,
        growth_factor=settings.incident_growth_factor,
        claim_stale_s=settings.incident_claim_stale_s,
    )


def dynamo_joiner(settings: Settings, *, client: DynamoDBClient | None = None) -> IncidentJoiner:
    """The worker's joiner over the store's table, configured from ``settings``."""
    return IncidentJoiner(
        dynamo_repo(settings, client=client),
        group_by=settings.incident_group_by,
        window_s=settings.incident_join_window_s,
        max_batch=settings.incident_join_max_batch,
    )
