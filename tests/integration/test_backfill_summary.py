"""`secops backfill` says apart what was complete before, what it would read and what it
read now: a dry run lists only what would be read, and a re-run's kept and sent are
this run's, not the complete files' (moto's S3, SQS and DynamoDB over HTTP)."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_s3_setup_backfill import ACL_PREFIX, Env, bucket, env, put_hour
from worker.cli.app import main

__all__ = ["env"]  # the fixture, shared with the backfill tests

pytestmark = pytest.mark.usefixtures("aws_endpoint")


def test_a_rerun_reports_complete_files_apart_and_a_dry_run_lists_only_what_is_left(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN three log files, two already read by an earlier backfill
    kept = [put_hour(env, hour, seed) for hour, seed in ((1, 1), (2, 2))]
    uri = f"s3://{bucket(env)}/{ACL_PREFIX}"
    assert main(["backfill", uri]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["read_now"]["kept"] == sum(kept) and first["complete"]["objects"] == 0
    new = put_hour(env, 3, 3)
    # AND a fourth file whose read an earlier run started and did not finish
    fourth = put_hour(env, 4, 4)
    listed = env.clients.s3.list_objects_v2(Bucket=bucket(env), Prefix=ACL_PREFIX)["Contents"]
    [partial] = [o for o in listed if "/h4." in o["Key"]]
    env.store.claim_object(bucket(env), partial["Key"], partial["ETag"].strip('"'), owner="gone", lease_s=0)

    # WHEN a dry run looks at the prefix
    assert main(["backfill", uri, "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    # THEN it lists only the files that would be read (one to resume), and counts the complete
    assert dry["objects"] == 4 and dry["complete"] == {"objects": 2}
    assert dry["to_read"]["objects"] == 2 and dry["to_read"]["resume"] == 1
    assert sorted(k.rsplit("/", 1)[1] for k in dry["to_read"]["keys"]) == ["h3.log.gz", "h4.log.gz"]

    # WHEN the backfill runs again
    assert main(["backfill", uri]) == 0
    again = json.loads(capsys.readouterr().out)
    # THEN what it read now is only the two files left, and the complete files' records are
    # reported apart, not as this run's
    assert again["complete"] == {"objects": 2, "records_read": 60, "kept": sum(kept)}
    now = again["read_now"]
    assert (now["objects"], now["resumed"], now["kept"], now["sent"]) == (2, 1, new + fourth, new + fourth)
    assert again["failed"] == {"objects": 0, "failures": []}
