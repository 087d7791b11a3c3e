"""``secops put-log BUCKET [FILE]``: drop a WAF log file into a log bucket, as WAF would.

For local development (LocalStack, a served demo): the file lands under WAF's own key
layout (``AWSLogs/<account>/WAFLogs/<region>/<acl>/YYYY/MM/dd/HH/mm/<name>``), so the
bucket's notification (``secops setup --log-bucket``) tells the queue and the worker
reads it like any log file WAF writes. Without FILE, a synthetic file is written:
default-allow noise with a share of attacks, stamped now.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

from worker.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Subparsers,
    configure_logs,
    one_shot_settings,
    out,
)

# The key's account and web ACL: placeholders, only the AWSLogs/ prefix is notified.
LOCAL_ACCOUNT = "000000000000"
LOCAL_ACL = "local"
SAMPLE_RECORDS = 300
SAMPLE_MATCHED = 0.05


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "put-log",
        help="write a WAF log file into a log bucket under WAF's key layout (local development)",
        description=(
            "Write FILE (a WAF log file, gzip or plain; - for stdin), or without FILE a synthetic "
            "one stamped now, into BUCKET under AWSLogs/.../WAFLogs/<region>/<acl>/YYYY/MM/dd/HH/mm/, "
            "so the bucket's notification (secops setup --log-bucket) sends it through the worker."
        ),
    )
    parser.add_argument("bucket", help="the log bucket, e.g. aws-waf-logs-local")
    parser.add_argument("file", nargs="?", help="a WAF log file (- for stdin); default: a synthetic one")
    parser.add_argument(
        "--records",
        type=int,
        default=SAMPLE_RECORDS,
        help=f"records of the synthetic file (default {SAMPLE_RECORDS}, about 5%% attacks)",
    )
    parser.set_defaults(handler=cmd_put_log)


def cmd_put_log(args: argparse.Namespace) -> int:
    from worker.ops.log_samples import gzip_ndjson, log_key, waf_log_records
    from worker.platform import clock

    if not 1 <= args.records <= 1_000_000:
        raise CliError("--records must be between 1 and 1000000", EXIT_USAGE)
    now = clock.now()
    result: dict[str, object] = {"bucket": args.bucket}
    if args.file is None:
        body = gzip_ndjson(
            waf_log_records(args.records, matched_ratio=SAMPLE_MATCHED, start=now - timedelta(minutes=1))
        )
        name = f"{LOCAL_ACCOUNT}_waflogs_local_{now:%Y%m%dT%H%M%S}Z.log.gz"
        result["records"] = args.records
    elif args.file == "-":
        body = sys.stdin.buffer.read()
        name = f"{LOCAL_ACCOUNT}_waflogs_stdin_{now:%Y%m%dT%H%M%S}Z.log"
    else:
        path = Path(args.file)
        try:
            body = path.read_bytes()
        except OSError as exc:
            # A path that names nothing readable is not a malformed argument: exit 1, as
            # for every command's input file (worker/ops/inputs.py).
            raise CliError(f"cannot read {args.file}: {exc.strerror or exc}", EXIT_FAILED) from None
        name = path.name
    settings = one_shot_settings()
    configure_logs(settings, one_shot_level="WARNING")
    from worker.daemon import Clients

    clients = Clients.from_settings(settings)
    key = log_key(LOCAL_ACCOUNT, clients.s3.meta.region_name, LOCAL_ACL, now, name)
    response = clients.s3.put_object(Bucket=args.bucket, Key=key, Body=body)
    result.update(key=key, bytes=len(body), etag=str(response.get("ETag", "")).strip('"'))
    out(json.dumps(result, indent=2))
    return EXIT_OK
