"""The response actions built from the settings: the WAFv2 IP sets, the block records
in the store's table, the blocker, and (unless SECOPS_RESPONSE_MODE=off) the policy."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from worker.platform import aws
from worker.ports import IpSetWriter, Metrics
from worker.response import config
from worker.response.blocker import Blocker, BlockListener
from worker.response.dynamodb import DynamoBlockRepo
from worker.response.policy import ResponsePolicy
from worker.response.responder import PolicyResponder
from worker.response.wafv2 import WafIpSets
from worker.settings import Settings

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_wafv2.client import WAFV2Client


def wafv2_clients(
    settings: Settings, *, given: WAFV2Client | None = None
) -> Callable[[str | None], WAFV2Client]:
    """A factory of wafv2 clients by region, each built once (CLOUDFRONT sets live in
    us-east-1); ``given`` serves the worker's own region."""
    clients: dict[str | None, WAFV2Client] = {}
    if given is not None:
        clients[None] = clients[settings.aws_region] = given
    lock = threading.Lock()

    def client_for(region: str | None) -> WAFV2Client:
        with lock:
            if region not in clients:
                clients[region] = aws.client(
                    "wafv2", region=region or settings.aws_region, localstack=settings.localstack
                )
            return clients[region]

    return client_for


def build_blocker(
    settings: Settings,
    *,
    dynamodb: DynamoDBClient,
    dry_run: bool | None = None,
    listener: BlockListener | None = None,
    ip_sets: IpSetWriter | None = None,
    wafv2: WAFV2Client | None = None,
) -> Blocker | None:
    """The blocker over the configured IP sets; None when no IP set is configured.

    ``dry_run`` defaults to SECOPS_RESPONSE_MODE=dry_run; ``wafv2`` is the client of the
    worker's region (else one is made); ``ip_sets`` replaces the WAFv2 adapter (tests).
    """
    sets = config.ip_sets(settings)
    if not sets:
        return None
    return Blocker(
        repo=DynamoBlockRepo(settings.table_name, client=dynamodb, ttl_days=settings.event_ttl_days),
        ip_sets=ip_sets
        if ip_sets is not None
        else WafIpSets(client_for=wafv2_clients(settings, given=wafv2)),
        sets=sets,
        allowlist=config.allowlist(settings),
        caps=config.caps(settings),
        prefix=settings.response_block_prefix,
        dry_run=settings.response_mode == "dry_run" if dry_run is None else dry_run,
        listener=listener,
    )


def policy(settings: Settings) -> ResponsePolicy:
    return ResponsePolicy(
        mode=settings.response_mode,
        min_severity=settings.response_min_severity,
        reached_app_only=settings.response_reached_app_only,
        min_events=settings.response_min_events,
        min_rate_per_min=settings.response_min_rate_per_min,
        duration_s=settings.response_duration_s,
        repeat_window_s=settings.response_repeat_window_s,
        repeat_factor=settings.response_repeat_factor,
        max_duration_s=settings.response_max_duration_s,
    )


def build_responder(
    settings: Settings, *, blocker: Blocker | None, metrics: Metrics | None = None
) -> PolicyResponder | None:
    """The policy over ``blocker``; None when the response is off (or nothing to write to)."""
    if settings.response_mode == "off" or blocker is None:
        return None
    return PolicyResponder(policy=policy(settings), blocker=blocker, metrics=metrics)
