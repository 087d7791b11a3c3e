"""A block's Note on its incident's Security Hub finding, through botocore's Stubber
(moto has no BatchUpdateFindings): the request's shape, and a refusal counted, never raised."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.stub import Stubber
from tenacity import wait_none

from worker.notify.blocks import BlockAnnouncer, finding_of, securityhub_note
from worker.notify.securityhub import SecurityHubChannel
from worker.response.records import POLICY, BlockRecord, IpSetRef

ACCOUNT = "111122223333"
PRODUCT = f"arn:aws:securityhub:eu-west-1:{ACCOUNT}:product/{ACCOUNT}/default"
RECORD = BlockRecord(
    network="203.0.113.9/32",
    address="203.0.113.9",
    ip_set=IpSetRef(name="secops-blocked-v4", id="abc", scope="REGIONAL", version="IPV4"),
    incident_id="inc#3f2a#1",
    reason="sqli at severity 5, reached the application",
    decided_by=POLICY,
    created_at=1_796_000_000.0,
    expires_at=1_796_014_400.0,
).opened(None)


def announcer(client: Any) -> BlockAnnouncer:
    hub = SecurityHubChannel(client=client, account_id=ACCOUNT, max_attempts=2, wait=wait_none())

    def note(record: BlockRecord, change: Any) -> str | None:
        finding = finding_of(record)
        assert finding is not None
        hub.note_finding(finding, securityhub_note(record, change))
        return finding

    return BlockAnnouncer({"securityhub": note})


def test_a_block_is_a_note_on_the_incidents_finding() -> None:
    # GIVEN Security Hub answering the note
    client = boto3.client("securityhub", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_response(
            "batch_update_findings",
            {
                "ProcessedFindings": [{"Id": "secops-worker/incidents/3f2a/1", "ProductArn": PRODUCT}],
                "UnprocessedFindings": [],
            },
            {
                "FindingIdentifiers": [{"Id": "secops-worker/incidents/3f2a/1", "ProductArn": PRODUCT}],
                "Note": {
                    "Text": "blocked 203.0.113.9 in ipset secops-blocked-v4 until 04:53 UTC. "
                    "Undo: secops block remove 203.0.113.9/32",
                    "UpdatedBy": "secops-worker",
                },
            },
        )
        # WHEN the block is announced
        announcer(client).blocked(RECORD)
        # THEN the one call named the finding and set only its note
        stub.assert_no_pending_responses()


def test_a_refused_note_is_counted_not_raised() -> None:
    # GIVEN Security Hub refusing the update
    client = boto3.client("securityhub", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_client_error("batch_update_findings", "AccessDeniedException", http_status_code=403)
        # WHEN the block is announced, THEN nothing is raised (the block stands)
        announcer(client).blocked(RECORD)
