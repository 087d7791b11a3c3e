"""``make chaos CHAOS_ARGS="--scenario s3"``: workers SIGKILLed at random points while they
read one WAF log file from S3.

moto's server runs in this process; a bucket notifies the events queue; one large gzip
log file is written as Firehose and CloudWatch Logs write theirs: concatenated gzip
members of ``--member-records`` records each (5,000 by default, about 5.5 MB inflated per
member; 0 writes one member). A ``secops run`` subprocess reads it and is SIGKILLed at a seeded
random moment after its checkpoint shows a read under way, ``--kills`` times, each time
replaced by a new one (which waits out the dead one's object lease); a last worker runs
to the end. Invariants (one per line of the report, exit 1 if one fails):

- the object's checkpoint is complete and counted every record exactly once;
- every kept record is an event in a terminal state (0 lost);
- no kept record was sent more than once per kill beyond its first (a resend is a
  second message on the same key, acknowledged as a duplicate: 0 processed twice);
- the DLQ is empty.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console(stderr=True, highlight=False)

# SendMessageBatch's limit: one batch may be in flight when a worker dies.
_BATCH = 10


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def _environment(kills: int) -> None:
    """Credentials for moto, and the settings every worker of the run shares."""
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "chaos",
            "AWS_SECRET_ACCESS_KEY": "chaos",  # moto accepts anything; nothing leaves the machine
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "SECOPS_QUEUE_NAME": "chaos-s3",
            "SECOPS_DLQ_NAME": "chaos-s3-dlq",
            "SECOPS_TABLE_NAME": "chaos-s3",
            # The invariants are stated for every kept record becoming its event.
            "SECOPS_LOG_FILTER": "matched",
            # Short, so a replacement takes a dead worker's object over quickly.
            "SECOPS_LEASE_S": "10",
            "SECOPS_RUNTIME_RETRY_DEADLINE_S": "5",
            "SECOPS_WAIT_TIME_S": "1",
            "SECOPS_VISIBILITY_TIMEOUT_S": "30",
            "SECOPS_HEARTBEAT_INTERVAL_S": "5",
            # Each kill costs the notification a receive; it must not reach the DLQ for it.
            "SECOPS_MAX_RECEIVE_COUNT": str(kills + 5),
            # A milestone claimed by a killed worker is taken over within the run (the
            # default, 300 s, would hold its event's redelivery that long).
            "SECOPS_INCIDENT_CLAIM_STALE_S": "10",
            "SECOPS_LOG_CHECKPOINT_S": "0.05",
            "SECOPS_METRICS_ENABLED": "false",
            "SECOPS_MONITOR_ENABLED": "false",
            "SECOPS_LOG_FORMAT": "json",
        }
    )


def run(records: int, kills: int, seed: int, out: Path, member_records: int = 5000) -> dict[str, Any]:
    from secops_core.ingest.normalize import normalize_event
    from secops_core.ingest.s3_logs import keep_record
    from worker.daemon import Clients
    from worker.embedded.moto import embedded_aws
    from worker.ops.log_samples import gzip_members, gzip_ndjson, log_key, waf_log_records
    from worker.platform.resources import setup_resources
    from worker.settings import Settings
    from worker.store.dynamodb import EventStore

    rng = random.Random(seed)  # noqa: S311 - kill timing, not secrets
    _environment(kills)
    with embedded_aws() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        settings = Settings(health_file=str(out / "health"))
        clients = Clients.from_settings(settings)
        store = EventStore(settings.table_name, client=clients.dynamodb)
        bucket = "aws-waf-logs-chaos"
        clients.s3.create_bucket(Bucket=bucket)
        resources, _ = setup_resources(
            settings, sqs=clients.sqs, sns=clients.sns, store=store, s3=clients.s3, log_bucket=bucket
        )
        start = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
        sample = list(waf_log_records(records, matched_ratio=0.001, start=start, seed=seed))
        expected = {normalize_event(r).event_key for r in sample if keep_record(r, "matched")}
        key = log_key("000000000000", "us-east-1", "chaos", start, "chaos.log.gz")
        env = {**os.environ, "SECOPS_HEALTH_FILE": str(out / "health"), "PYTHONUNBUFFERED": "1"}

        def start_worker(n: int) -> subprocess.Popen[bytes]:
            with (out / f"worker-{n}.stderr").open("wb") as err:
                return subprocess.Popen(
                    [sys.executable, "-m", "worker.cli", "run"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )

        def checkpoint() -> Any:
            return store.get_object(bucket, key, etag)

        worker = start_worker(0)
        body = gzip_members(sample, per_member=member_records) if member_records else gzip_ndjson(sample)
        etag = clients.s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
        positions = []
        for n in range(kills):
            floor = checkpoint().position if checkpoint() else 0
            _wait(
                lambda floor=floor: (
                    (c := checkpoint()) is not None and floor < c.position < records and not c.complete
                ),
                180,
                f"read under way before kill {n + 1}",
            )
            time.sleep(rng.uniform(0, 0.3))
            worker.kill()
            worker.wait(timeout=10)
            positions.append(checkpoint().position)
            console.log(f"kill {n + 1}: checkpoint at frame {positions[-1]:,} of {records:,}")
            worker = start_worker(n + 1)
        try:
            done = _wait(
                lambda: (c := checkpoint()) is not None and c.complete and c,
                300,
                "the checkpoint to complete",
            )
            _wait(
                lambda: (
                    all(r.is_terminal for r in store.get_many(sorted(expected)).values())
                    and len(store.get_many(sorted(expected))) == len(expected)
                ),
                300,
                "every kept record to be terminal",
            )
        finally:
            worker.kill()
            worker.wait(timeout=10)
        events = store.get_many(sorted(expected))
        resent = sum(1 for r in events.values() if len(r.message_ids) > 1)
        assert resources.dlq_url is not None
        dlq = int(
            clients.sqs.get_queue_attributes(
                QueueUrl=resources.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
        )
    invariants = {
        "checkpoint_complete_and_counted_once": done.complete and done.read == records and done.bad == 0,
        "no_kept_record_lost": set(events) == expected and all(r.is_terminal for r in events.values()),
        "resent_at_most_one_batch_per_kill": resent <= kills * _BATCH,
        "dlq_empty": dlq == 0,
    }
    return {
        "scenario": "s3",
        "seed": seed,
        "records": records,
        "gzip_members": -(-records // member_records) if member_records else 1,
        "kept": len(expected),
        "kills": kills,
        "kill_positions": positions,
        "attempts": done.attempts,
        "resent_records": resent,
        "dlq": dlq,
        "invariants": invariants,
        "ok": all(invariants.values()),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaos.run --scenario s3", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--scenario", choices=["s3"], default="s3")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--member-records", type=int, default=5000, help="records per gzip member (0: one member)"
    )
    parser.add_argument("--out", default=None, help="where worker logs stay (default: a temporary directory)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="chaos-s3-"))
    out.mkdir(parents=True, exist_ok=True)
    report = run(args.records, args.kills, args.seed, out, args.member_records)
    console.log(f"{'all invariants hold' if report['ok'] else 'invariants FAILED'}; worker logs in {out}")
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


def dispatch(argv: list[str]) -> int:
    """``--scenario s3`` (kills mid-file) or ``--scenario s3-hostile`` (chaos/s3_hostile.py)."""
    if "s3-hostile" in argv or "--scenario=s3-hostile" in argv:
        from chaos import s3_hostile

        return s3_hostile.main(argv)
    return main(argv)
