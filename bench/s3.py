"""``make bench BENCH_ARGS="--scenario s3"``: WAF log files from S3, read, filtered, fanned out.

Two measurements of one generated gzip log file (default 100,000 records, 2 % matched):

1. **read + filter**, in a fresh process per JSON parser (so ``peak_rss_mb`` is the
   reader's own high-water mark, not the generator's): records per CPU-second of one
   core (``records_per_s``) and per wall second, and the peak resident memory;
2. **the pipeline**: the file is put in moto's S3, S3's own notification reaches the
   events queue, a worker (rules provider, in-process runtime) reads it, fans the kept
   records out and triages each. AWS requests are counted by operation at the clients.

``cost_per_million_records_usd`` prices the measured requests per record and the model
tokens the kept records would cost with a model, from named inputs every one of which
can be overridden on the command line (defaults: AWS list prices, us-east-1, as the
README states them). The results go under ``"s3"`` in ``bench/results.json``, beside
whatever the other scenarios wrote there.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.results import DEFAULT_OUTPUT, write_section
from testkit.memory import peak_rss_mb


@dataclass(frozen=True)
class Prices:
    """USD list prices (us-east-1); each one is a command-line option of the same name."""

    # Amazon Nova Lite on-demand, per 1,000 tokens.
    nova_lite_input_per_1k_tokens: float = 0.00006
    nova_lite_output_per_1k_tokens: float = 0.00024
    # SQS standard queue, per request (every API call; a 64 KiB chunk of payload is one).
    sqs_per_request: float = 0.40 / 1_000_000
    # DynamoDB on demand, per write / read request unit (items under 1 KB / 4 KB).
    dynamodb_per_write: float = 0.625 / 1_000_000
    dynamodb_per_read: float = 0.125 / 1_000_000
    # S3 Standard: GET per request, LIST per request.
    s3_per_get: float = 0.0004 / 1_000
    s3_per_list: float = 0.005 / 1_000
    # SNS publish, per request.
    sns_per_publish: float = 0.50 / 1_000_000
    # What one model analysis of a kept record takes (a WAF record fenced as data, the
    # instructions and the structured answer), and how many a kept record needs.
    input_tokens_per_call: float = 1500
    output_tokens_per_call: float = 300
    model_calls_per_kept: float = 1.0


_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_READS = {"GetItem", "BatchGetItem", "Query", "Scan"}


def cost_per_million(requests: dict[str, int], records: int, kept: int, prices: Prices) -> dict[str, float]:
    """USD per million log records: each AWS request priced, plus the model's tokens."""
    aws: dict[str, float] = {}
    for name, count in requests.items():
        service, operation = name.split(".", 1)
        if service == "sqs":
            aws["sqs"] = aws.get("sqs", 0.0) + count * prices.sqs_per_request
        elif service == "dynamodb" and operation in _WRITES:
            aws["dynamodb"] = aws.get("dynamodb", 0.0) + count * prices.dynamodb_per_write
        elif service == "dynamodb" and operation in _READS:
            aws["dynamodb"] = aws.get("dynamodb", 0.0) + count * prices.dynamodb_per_read
        elif service == "s3" and operation.startswith("List"):
            aws["s3"] = aws.get("s3", 0.0) + count * prices.s3_per_list
        elif service == "s3":
            aws["s3"] = aws.get("s3", 0.0) + count * prices.s3_per_get
        elif service == "sns":
            aws["sns"] = aws.get("sns", 0.0) + count * prices.sns_per_publish
    per_call = (
        prices.input_tokens_per_call * prices.nova_lite_input_per_1k_tokens
        + prices.output_tokens_per_call * prices.nova_lite_output_per_1k_tokens
    ) / 1000
    model = kept * prices.model_calls_per_kept * per_call
    scale = 1_000_000 / max(records, 1)
    out = {name: round(value * scale, 4) for name, value in sorted(aws.items())}
    out["model"] = round(model * scale, 4)
    out["total"] = round((sum(aws.values()) + model) * scale, 4)
    return out


# ---- the file -------------------------------------------------------------------------------


def write_log_file(path: Path, records: int, matched: float) -> None:
    """A gzip NDJSON file written record by record (memory stays one record deep)."""
    from worker.ops.log_samples import waf_log_records

    start = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    with gzip.open(path, "wb", compresslevel=6) as out:
        for record in waf_log_records(records, matched_ratio=matched, start=start, seed=42):
            out.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")


# ---- 1. read + filter (in a child process) ----------------------------------------------------


def measure_read(path: str, parser: str, repeat: int = 5) -> dict[str, Any]:
    """Read and filter ``path`` ``repeat`` times: the median and the best CPU time of one
    read (the machine is shared: the median is the figure, the best its floor)."""
    import statistics

    from secops_core.ingest.s3_logs import LogObjectReader, open_log_stream

    if parser == "orjson":
        import orjson  # type: ignore[import-not-found,unused-ignore]

        loads: Any = orjson.loads
    else:
        loads = json.loads
    cpu_times, wall_times = [], []
    for _ in range(max(repeat, 1)):
        wall, cpu = time.perf_counter(), time.process_time()
        with open(path, "rb") as body:
            # The worker's default filter (SECOPS_LOG_FILTER=relevant): the catalog decides.
            reader = LogObjectReader(open_log_stream(body), loads=loads, keep="relevant")
            kept = sum(len(frame) for frame in reader)
        cpu_times.append(time.process_time() - cpu)
        wall_times.append(time.perf_counter() - wall)
    cpu_s, wall_s = statistics.median(cpu_times), statistics.median(wall_times)
    counts = reader.counts
    return {
        "parser": parser,
        "records": counts.read,
        "kept": kept - counts.counted,
        "counted": counts.counted,
        "skipped": counts.skipped,
        "bad": counts.bad,
        "reads": len(cpu_times),
        "cpu_s": round(cpu_s, 3),
        "wall_s": round(wall_s, 3),
        # Per CPU-second of the one core the reader runs on: the machine is shared, so
        # the wall clock also counts other processes' time slices.
        "records_per_s": round(counts.read / max(cpu_s, 1e-9)),
        "records_per_s_best": round(counts.read / max(min(cpu_times), 1e-9)),
        "records_per_s_wall": round(counts.read / max(wall_s, 1e-9)),
        "peak_rss_mb": peak_rss_mb(),
    }


def read_in_child(path: Path, parser: str, repeat: int = 5) -> dict[str, Any] | None:
    if parser == "orjson":
        try:
            import orjson  # noqa: F401
        except ImportError:
            return None
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.s3",
            "--measure-read",
            str(path),
            "--parser",
            parser,
            "--repeat",
            str(repeat),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# ---- 2. the pipeline -------------------------------------------------------------------------


def run_pipeline(path: Path, timeout_s: float) -> dict[str, Any]:
    """Put the file in moto's S3 and let its notification drive a worker through it."""
    from worker.daemon import Clients, build_worker, run_worker
    from worker.embedded.moto import embedded_aws, sealed
    from worker.platform.metrics import Metrics
    from worker.platform.resources import setup_resources
    from worker.settings import Settings
    from worker.store.dynamodb import EventStore

    # Sealed like the demo: every client reaches the embedded moto and nothing the shell
    # points at (an exported AWS_ENDPOINT_URL_SQS, a profile) is touched.
    with embedded_aws() as endpoint, sealed(endpoint), tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            aws_region="us-east-1",
            provider="rules",
            transport="inprocess",
            concurrency=16,
            wait_time_s=1,
            exit_when_idle_polls=3,
            visibility_timeout_s=60,
            heartbeat_interval_s=20,
            metrics_enabled=False,
            monitor_enabled=False,
            health_file=str(Path(tmp) / "health"),
            log_level="WARNING",
            log_format="json",
        )
        admin = Clients.from_settings(settings)
        bucket = "aws-waf-logs-bench"
        admin.s3.create_bucket(Bucket=bucket)
        resources, _ = setup_resources(
            settings,
            sqs=admin.sqs,
            sns=admin.sns,
            store=EventStore(settings.table_name, client=admin.dynamodb),
            s3=admin.s3,
            log_bucket=bucket,
        )
        requests: Counter[str] = Counter()
        lock = threading.Lock()

        def on_send(event_name: str, **_: Any) -> None:
            _prefix, service, operation = event_name.split(".", 2)
            with lock:
                requests[f"{service}.{operation}"] += 1

        clients = Clients.from_settings(settings)
        for client in (clients.sqs, clients.sns, clients.dynamodb, clients.s3):
            client.meta.events.register("before-send", on_send)
        worker = build_worker(settings, clients=clients, resources=resources, metrics=Metrics(enabled=False))
        outcomes: Counter[str] = Counter()
        worker.consumer.on_outcome = lambda o: outcomes.update([o.kind])
        key = "AWSLogs/000000000000/WAFLogs/us-east-1/bench/2026/11/30/10/00/bench.log.gz"
        # The upload is WAF's work, not ours: through the uncounted client.
        admin.s3.upload_file(str(path), bucket, key)
        timer = threading.Timer(timeout_s, worker.consumer.stop)
        timer.start()
        wall, cpu = time.perf_counter(), time.process_time()
        run_worker(worker, with_scheduler=False)
        wall_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        timer.cancel()
        etag = admin.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        checkpoint = worker.store.get_object(bucket, key, etag)
    kept = checkpoint.kept if checkpoint else 0
    events = outcomes.get("done", 0) + outcomes.get("duplicate", 0)
    per_kept = max(kept, 1)
    total = sum(requests.values())
    return {
        "checkpoint": {
            "complete": bool(checkpoint and checkpoint.complete),
            "read": checkpoint.read if checkpoint else 0,
            "kept": kept,
            "skipped": checkpoint.skipped if checkpoint else 0,
            "bad": checkpoint.bad if checkpoint else 0,
        },
        "outcomes": dict(outcomes),
        "events_terminal": events,
        "drain_s": round(wall_s, 2),
        "events_per_s": round(events / max(wall_s, 1e-9), 1),
        # Worker and moto share this process: the figure is an upper bound for the worker.
        "process_cpu_ms_per_kept": round(cpu_s * 1000 / per_kept, 2),
        "api_requests": {
            "total": total,
            "per_kept": round(total / per_kept, 3),
            "by_operation": {
                name: {"count": count, "per_kept": round(count / per_kept, 3)}
                for name, count in sorted(requests.items())
            },
        },
    }


# ---- the scenario ------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run --scenario s3", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--scenario", choices=["s3"], default="s3")
    parser.add_argument("--records", type=int, default=100_000, help="records in the generated file")
    parser.add_argument("--matched", type=float, default=0.02, help="share of matched records")
    parser.add_argument("--no-pipeline", action="store_true", help="measure read + filter only")
    parser.add_argument("--pipeline-timeout-s", type=float, default=900.0)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--measure-read", help=argparse.SUPPRESS)
    parser.add_argument("--parser", default="json", help=argparse.SUPPRESS)
    parser.add_argument(
        "--repeat", type=int, default=5, help="reads of the file per parser (the median is reported)"
    )
    for name, value in asdict(Prices()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=value, dest=name)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.measure_read:
        sys.stdout.write(json.dumps(measure_read(args.measure_read, args.parser, args.repeat)) + "\n")
        return 0
    from secops_core.logs import configure_logging

    configure_logging("WARNING", "json")
    prices = Prices(**{name: getattr(args, name) for name in asdict(Prices())})
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
        path = Path(tmp) / "waf.log.gz"
        console.print(f"generating {args.records:,} records ({args.matched:.0%} matched) …")
        write_log_file(path, args.records, args.matched)
        reads = [
            r for r in (read_in_child(path, p, args.repeat) for p in ("json", "orjson")) if r is not None
        ]
        pipeline = None if args.no_pipeline else run_pipeline(path, args.pipeline_timeout_s)
        size_mb = round(path.stat().st_size / 1e6, 2)
    best = reads[0]
    result: dict[str, Any] = {
        "records": args.records,
        "matched_ratio": args.matched,
        "file_mb_gzip": size_mb,
        "parser": best["parser"],
        "records_per_s": best["records_per_s"],
        "records_per_s_best": best["records_per_s_best"],
        "records_per_s_wall": best["records_per_s_wall"],
        "kept": best["kept"],
        "peak_rss_mb": best["peak_rss_mb"],
        "read_filter_by_parser": reads,
        "pipeline": pipeline,
        "prices_usd": asdict(prices),
    }
    if pipeline is not None:
        requests = {n: v["count"] for n, v in pipeline["api_requests"]["by_operation"].items()}
        result["cost_per_million_records_usd"] = cost_per_million(
            requests, args.records, best["kept"], prices
        )
    output = Path(args.output)
    write_section(output, "s3", result)
    table = Table(
        title=f"S3 log file: {args.records:,} records, {args.matched:.0%} matched", title_justify="left"
    )
    columns = ("parser", "records/s (CPU, median)", "best", "records/s (wall)", "kept", "peak RSS MB")
    for column in columns:
        table.add_column(column)
    for r in reads:
        table.add_row(
            r["parser"],
            f"{r['records_per_s']:,}",
            f"{r['records_per_s_best']:,}",
            f"{r['records_per_s_wall']:,}",
            str(r["kept"]),
            str(r["peak_rss_mb"]),
        )
    console.print(table)
    if pipeline is not None:
        console.print(
            f"pipeline: {pipeline['events_terminal']} events in {pipeline['drain_s']} s, "
            f"{pipeline['api_requests']['per_kept']} AWS requests per kept record; "
            f"cost per million records: {result['cost_per_million_records_usd']}"
        )
    console.print(f"results: {output} (key 's3')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
