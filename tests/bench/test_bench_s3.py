"""The S3 scenario of the benchmark: its cost arithmetic and its read measurement."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.s3 import Prices, cost_per_million, measure_read, write_log_file


def test_cost_prices_each_request_and_the_model() -> None:
    # GIVEN 1,000 records, 20 kept, one GetObject, 10 SQS calls and 40 DynamoDB writes
    requests = {"s3.GetObject": 1, "sqs.SendMessageBatch": 10, "dynamodb.UpdateItem": 40}
    prices = Prices(input_tokens_per_call=1000, output_tokens_per_call=0)
    # WHEN priced per million records
    cost = cost_per_million(requests, 1000, 20, prices)
    # THEN each part is the request count times its named price, scaled by 1,000
    assert cost["s3"] == pytest.approx(1000 * prices.s3_per_get, abs=1e-4)
    assert cost["sqs"] == pytest.approx(10_000 * prices.sqs_per_request, abs=1e-4)
    assert cost["dynamodb"] == pytest.approx(40_000 * prices.dynamodb_per_write, abs=1e-4)
    assert cost["model"] == pytest.approx(20_000 * prices.nova_lite_input_per_1k_tokens, abs=1e-4)
    assert cost["total"] == pytest.approx(sum(v for k, v in cost.items() if k != "total"), abs=1e-3)


def test_read_measurement_counts_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.log.gz"
    write_log_file(path, 2000, 0.02)
    result = measure_read(str(path), "json")
    # 40 matched: the rate-limited ones are counted in their window, the rest are events
    assert (result["records"], result["kept"], result["counted"], result["skipped"], result["bad"]) == (
        2000,
        30,
        10,
        1960,
        0,
    )
    assert result["records_per_s"] > 0 and result["peak_rss_mb"] > 0
