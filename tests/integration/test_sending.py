"""``send_records`` against moto: batches of ten, never over SQS's 1 MiB per call."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.ops.inputs import MAX_LINE_BYTES
from worker.ops.sending import send_records
from worker.platform import aws
from worker.settings import SQS_MAX_MESSAGE_BYTES

pytestmark = pytest.mark.usefixtures("aws_endpoint")


class CountingSqs:
    """The real client; remembers the size of every SendMessageBatch call.

    ``refuse`` holds bodies answered as a failed entry, the way SQS refuses one entry
    of a batch (moto accepts every body it can parse).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[tuple[int, int]] = []  # (entries, body bytes)
        self.refuse: set[str] = set()

    def send_message_batch(self, **params: Any) -> Any:
        entries = params["Entries"]
        self.batches.append((len(entries), sum(len(e["MessageBody"].encode()) for e in entries)))
        accepted = [e for e in entries if e["MessageBody"] not in self.refuse]
        response = dict(self.inner.send_message_batch(QueueUrl=params["QueueUrl"], Entries=accepted))
        response["Failed"] = [
            {"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents", "Message": "refused"}
            for e in entries
            if e["MessageBody"] in self.refuse
        ]
        return response


@pytest.fixture
def queue(unique: str) -> Iterator[tuple[CountingSqs, str]]:
    client = aws.client("sqs")
    url = client.create_queue(QueueName=f"send-{unique}")["QueueUrl"]
    yield CountingSqs(client), url
    client.delete_queue(QueueUrl=url)


def test_records_go_out_ten_to_a_call(queue: tuple[CountingSqs, str]) -> None:
    sqs, url = queue
    lines = "\n".join(json.dumps({"id": f"b-{n}"}) for n in range(23))
    result = send_records(sqs, url, io.StringIO(lines))
    assert (result["sent"], result["skipped"], result["failed"]) == (23, 0, 0)
    assert [count for count, _ in sqs.batches] == [10, 10, 3]


def test_big_records_are_batched_under_the_1_mib_call_limit(queue: tuple[CountingSqs, str]) -> None:
    # GIVEN five records of 300 KB: ten of them would be a 3 MB call SQS refuses whole
    sqs, url = queue
    lines = "\n".join(json.dumps({"id": f"big-{n}", "pad": "x" * 300_000}) for n in range(5))

    # WHEN they are sent
    result = send_records(sqs, url, io.StringIO(lines))

    # THEN all arrive, in calls that each stay within the limit
    assert result["sent"] == 5
    assert all(size <= SQS_MAX_MESSAGE_BYTES for _, size in sqs.batches)
    assert [count for count, _ in sqs.batches] == [3, 2]


def test_an_oversize_line_is_skipped_even_raw(queue: tuple[CountingSqs, str]) -> None:
    # GIVEN a line longer than any message SQS takes, between two good ones
    sqs, url = queue
    lines = '{"id": "a"}\n' + "y" * (MAX_LINE_BYTES + 1) + '\n{"id": "b"}\n'

    # WHEN sent verbatim
    result = send_records(sqs, url, io.StringIO(lines), raw=True)

    # THEN it is skipped (never truncated and sent), and the rest still go
    assert (result["sent"], result["skipped_lines"]) == (2, [2])
    bodies = [m["Body"] for m in sqs.inner.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(bodies) == ['{"id": "a"}', '{"id": "b"}']


def test_entries_sqs_refuses_are_counted_as_failed(queue: tuple[CountingSqs, str]) -> None:
    # GIVEN SQS refuses one entry of the batch
    sqs, url = queue
    sqs.refuse.add('{"id":"no"}')

    # WHEN both lines are sent
    result = send_records(sqs, url, io.StringIO('{"id": "ok"}\n{"id": "no"}\n'))

    # THEN the refusal is reported with its line and code, the other is sent
    assert (result["sent"], result["failed"]) == (1, 1)
    assert result["failures"] == [{"line": 2, "code": "InvalidMessageContents", "message": "refused"}]


def test_shift_to_now_moves_the_newest_record_to_now_and_keeps_the_spacing(
    queue: tuple[CountingSqs, str],
) -> None:
    # GIVEN records written days ago, in both shapes, ten minutes apart, and a bad line
    sqs, url = queue
    lines = "\n".join(
        [
            json.dumps({"id": "old", "timestamp": "2020-01-01T10:00:00Z"}),
            json.dumps({"timestamp": 1577873400000, "action": "BLOCK"}),  # 2020-01-01T10:10:00Z
            "not json",
        ]
    )

    # WHEN they are sent shifted to now
    before = datetime.now(UTC)
    result = send_records(sqs, url, io.StringIO(lines), shift_to_now=True)
    after = datetime.now(UTC)

    # THEN the newest is now, the other ten minutes before it, and the bad line skipped
    assert (result["sent"], result["skipped_lines"]) == (2, [3])
    bodies = [
        json.loads(m["Body"])
        for m in sqs.inner.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    by_shape = {("id" in body): body["timestamp"] for body in bodies}
    newest = datetime.fromtimestamp(by_shape[False] / 1000, UTC)
    oldest = datetime.fromisoformat(by_shape[True].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= newest <= after
    assert newest - oldest == timedelta(minutes=10)
