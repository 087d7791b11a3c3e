"""``make chaos CHAOS_ARGS="--scenario s3-hostile"``: objects written by someone who can write
to the log bucket, each read under the worker's bounds.

Every bound is the worker's default except the two on kept records, lowered to
``--max-kept-per-object`` (1,000) and ``--max-kept-per-envelope`` (200): moto's queue
slows down with every message it holds (50 batches of 10 took 8 s, the fourth 50 took
80 s), so the default 50,000 would take an hour to send here; the arithmetic is the same.

moto's server runs in this process. Each object is put in an ``aws-waf-logs-*`` bucket and
read by its own ``secops backfill`` subprocess (the handler a notification drives, without
the events behind it), so the figures are that object's alone: wall and CPU time, peak
resident memory (``wait4``), records sent to the queue, and the checkpoint's counts and
the bounds it names. The objects:

- ``bomb``: 128 gzip members of 64 MiB of zeros each (8 GiB inflated from 8 MB), one
  line with no end: the inflation bounds must end it;
- ``bomb_one_member``: one member inflating to 2 GiB of newlines (blank lines);
- ``amplifier_copies``: 8 CloudWatch envelopes of 30,000 copies of one small attack each
  (`}{`-joined, as CloudWatch → Firehose → S3 writes them): sent once, the copies counted;
- ``amplifier_envelopes``: 6 envelopes of 30,000 distinct small attacks: the per-envelope
  bound on each, then the per-object bound;
- ``amplifier_distinct``: 120,000 distinct full-size attacks, NDJSON: the per-object bound;
- ``quadratic_join``: a ``}{`` run whose string holds 320,000 ``}{`` pairs, then an attack
  on the next line.

Invariants (exit 1 if one fails): every read completes within ``SECOPS_LOG_MAX_READ_S``
and under ``--max-rss-mb``; no object sends more than its bound; the bombs stop at an
inflation bound; the join costs time linear in its size (its read stays under
``--max-join-s``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=True, highlight=False)

_MIB = 1024 * 1024
_START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def _bomb() -> bytes:
    member = gzip.compress(b"\0" * (64 * _MIB), compresslevel=9)
    return member * 128


def _bomb_one_member() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\n" * (16 * _MIB)
    return b"".join(packer.compress(block) for _ in range(128)) + packer.flush()


def _attacks(count: int, seed: int) -> list[dict[str, Any]]:
    from worker.ops.log_samples import waf_log_records

    return list(waf_log_records(count, matched_ratio=1.0, start=_START, seed=seed))


def _envelope(messages: list[str]) -> bytes:
    envelope = {
        "messageType": "DATA_MESSAGE",
        "owner": "000000000000",
        "logGroup": "aws-waf-logs-hostile",
        "logStream": "us-east-1_acl_0",
        "subscriptionFilters": ["f"],
        "logEvents": [{"id": str(i), "timestamp": 1, "message": m} for i, m in enumerate(messages)],
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def _small_attack(n: int) -> str:
    """The least a record needs to be kept: an action that blocks and a request."""
    return f'{{"action":"BLOCK","httpRequest":{{"clientIp":"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}}}}'


def _amplifier_copies() -> bytes:
    envelope = _envelope([_small_attack(0)] * 30_000)
    return gzip.compress(envelope * 8, compresslevel=9)


def _amplifier_envelopes() -> bytes:
    run = b"".join(_envelope([_small_attack(e * 30_000 + i) for i in range(30_000)]) for e in range(6))
    return gzip.compress(run, compresslevel=9)


def _amplifier_distinct() -> bytes:
    from worker.ops.log_samples import gzip_ndjson

    return gzip_ndjson(_attacks(120_000, 2))


def _quadratic_join() -> bytes:
    attack = json.dumps(_attacks(1, 3)[0], separators=(",", ":")).encode()
    run = b'{"httpRequest":{"uri":"' + b"}{" * 320_000 + b"x\n" + attack + b"\n"
    return gzip.compress(run, compresslevel=9)


OBJECTS: dict[str, Callable[[], bytes]] = {
    "bomb": _bomb,
    "bomb_one_member": _bomb_one_member,
    "amplifier_copies": _amplifier_copies,
    "amplifier_envelopes": _amplifier_envelopes,
    "amplifier_distinct": _amplifier_distinct,
    "quadratic_join": _quadratic_join,
}


# `secops backfill` in a fresh interpreter that reports its own peak memory at the end.
# VmHWM is the high-water mark of this program's address space: unlike ru_maxrss it does
# not carry the parent's memory over the fork (the parent holds moto and the objects).
_MEASURED = """
import re, sys
from worker.cli.app import main
code = main(["backfill", sys.argv[1]])
with open("/proc/self/status") as status:
    sys.stderr.write("\\nVmHWM_KB=" + re.search(r"VmHWM:\\s+(\\d+)", status.read()).group(1) + "\\n")
sys.exit(code)
"""


def _backfill(uri: str, env: dict[str, str]) -> tuple[dict[str, Any], float, float, float]:
    """One ``secops backfill``: its summary, wall s, CPU s and peak RSS MB (this child only)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            [sys.executable, "-c", _MEASURED, uri], env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        errors = err.read().decode("utf-8", "replace")
        if process.returncode != 0:
            raise RuntimeError(f"backfill {uri} exited {process.returncode}: {errors[-2000:]}")
        summary: dict[str, Any] = json.loads(out.read())
    peak_kb = int(errors.rsplit("VmHWM_KB=", 1)[1].split()[0])
    return summary, wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024


def run(
    names: list[str],
    max_rss_mb: float,
    max_join_s: float,
    max_kept_per_object: int = 1000,
    max_kept_per_envelope: int = 200,
) -> dict[str, Any]:
    from worker.daemon import Clients
    from worker.embedded.moto import embedded_aws
    from worker.platform.resources import setup_resources
    from worker.settings import Settings
    from worker.store.dynamodb import EventStore

    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "chaos",
            "AWS_SECRET_ACCESS_KEY": "chaos",  # moto accepts anything; nothing leaves the machine
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "SECOPS_QUEUE_NAME": "chaos-hostile",
            "SECOPS_DLQ_NAME": "chaos-hostile-dlq",
            "SECOPS_TABLE_NAME": "chaos-hostile",
            "SECOPS_METRICS_ENABLED": "false",
            "SECOPS_LOG_FORMAT": "json",
            "SECOPS_LOG_MAX_KEPT_PER_OBJECT": str(max_kept_per_object),
            "SECOPS_LOG_MAX_KEPT_PER_ENVELOPE": str(max_kept_per_envelope),
        }
    )
    results: dict[str, Any] = {}
    with embedded_aws() as endpoint, tempfile.TemporaryDirectory() as tmp:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        settings = Settings(health_file=str(Path(tmp) / "health"))
        clients = Clients.from_settings(settings)
        store = EventStore(settings.table_name, client=clients.dynamodb)
        bucket = "aws-waf-logs-hostile"
        clients.s3.create_bucket(Bucket=bucket)
        setup_resources(settings, sqs=clients.sqs, sns=clients.sns, store=store, s3=None)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name in names:
            console.log(f"{name}: writing the object …")
            body = OBJECTS[name]()
            key = f"AWSLogs/000000000000/WAFLogs/us-east-1/hostile/2026/11/30/10/00/{name}.gz"
            etag = clients.s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
            summary, wall, cpu, rss = _backfill(f"s3://{bucket}/{key}", env)
            done = store.get_object(bucket, key, etag)
            assert done is not None
            results[name] = {
                "object_bytes": len(body),
                "inflated_bytes": done.inflated_bytes,
                # The read itself (the checkpoint's clock), then the whole command (start-up
                # and imports included).
                "read_s": round(done.read_s, 2),
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "peak_rss_mb": round(rss, 1),
                "records_sent": summary["read_now"]["sent"],
                "read": done.read,
                "kept": done.kept,
                "duplicates": done.duplicates,
                "capped": done.capped,
                "bad": done.bad,
                "limits": list(done.limits),
                "bad_reasons": sorted({b.reason for b in done.bad_lines}),
                "complete": done.complete,
            }
            console.log(f"{name}: {results[name]}")
    invariants = _invariants(results, settings, max_rss_mb, max_join_s)
    return {
        "scenario": "s3-hostile",
        "bounds": {
            "max_inflated_mib": settings.log_max_inflated_mib,
            "max_inflation_ratio": settings.log_max_inflation_ratio,
            "max_read_s": settings.log_max_read_s,
            "max_kept_per_object": settings.log_max_kept_per_object,
            "max_kept_per_envelope": settings.log_max_kept_per_envelope,
            "max_rss_mb": max_rss_mb,
            "max_join_s": max_join_s,
        },
        "objects": results,
        "invariants": invariants,
        "ok": all(invariants.values()),
    }


def _invariants(
    results: dict[str, Any], settings: Any, max_rss_mb: float, max_join_s: float
) -> dict[str, bool]:
    checks: dict[str, bool] = {}
    for name, r in results.items():
        checks[f"{name}_complete_in_time"] = r["complete"] and r["read_s"] <= settings.log_max_read_s
        checks[f"{name}_rss_bounded"] = r["peak_rss_mb"] <= max_rss_mb
        checks[f"{name}_sends_within_bound"] = r["records_sent"] <= settings.log_max_kept_per_object
    for name in ("bomb", "bomb_one_member"):
        if name in results:
            r = results[name]
            checks[f"{name}_stopped_by_an_inflation_bound"] = (
                bool({"inflated_bytes", "inflation_ratio"} & set(r["limits"]))
                and r["inflated_bytes"] <= settings.log_max_inflated_mib * _MIB
            )
    if "amplifier_copies" in results:
        r = results["amplifier_copies"]
        checks["amplifier_copies_sent_once"] = r["records_sent"] == 1 and r["duplicates"] == 8 * 30_000 - 1
    if "amplifier_envelopes" in results:
        r = results["amplifier_envelopes"]
        checks["amplifier_envelopes_capped"] = r["records_sent"] == settings.log_max_kept_per_object and {
            "kept_per_envelope",
            "kept_per_object",
        } <= set(r["limits"])
    if "amplifier_distinct" in results:
        r = results["amplifier_distinct"]
        checks["amplifier_distinct_capped"] = (
            r["records_sent"] == settings.log_max_kept_per_object and "kept_per_object" in r["limits"]
        )
    if "quadratic_join" in results:
        r = results["quadratic_join"]
        checks["quadratic_join_linear"] = r["read_s"] <= max_join_s and r["records_sent"] == 1
    return checks


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaos.run --scenario s3-hostile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--scenario", choices=["s3-hostile"], default="s3-hostile")
    parser.add_argument(
        "--objects", default=",".join(OBJECTS), help="comma-separated, from: " + ", ".join(OBJECTS)
    )
    parser.add_argument("--max-rss-mb", type=float, default=256.0, help="peak memory one read may reach")
    parser.add_argument("--max-kept-per-object", type=int, default=1000)
    parser.add_argument("--max-kept-per-envelope", type=int, default=200)
    parser.add_argument(
        "--max-join-s", type=float, default=30.0, help="seconds the 320,000-pair join may take to read"
    )
    args = parser.parse_args(argv)
    from secops_core.logs import configure_logging

    # The report is the only thing on stdout.
    configure_logging("WARNING", "json")
    names = [n.strip() for n in args.objects.split(",") if n.strip()]
    unknown = [n for n in names if n not in OBJECTS]
    if unknown:
        parser.error(f"unknown object(s): {', '.join(unknown)}")
    report = run(
        names, args.max_rss_mb, args.max_join_s, args.max_kept_per_object, args.max_kept_per_envelope
    )
    table = Table(title="hostile objects under the worker's bounds", title_justify="left")
    for column in ("object", "gzip", "inflated", "read s", "CPU s", "peak RSS MB", "sent", "bounds reached"):
        table.add_column(column)
    for name, r in report["objects"].items():
        table.add_row(
            name,
            f"{r['object_bytes'] / 1e6:.2f} MB",
            f"{r['inflated_bytes'] / 1e6:,.0f} MB",
            str(r["read_s"]),
            str(r["cpu_s"]),
            str(r["peak_rss_mb"]),
            f"{r['records_sent']:,}",
            ", ".join(r["limits"]) or "-",
        )
    console.print(table)
    console.log("all invariants hold" if report["ok"] else "invariants FAILED")
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1
