"""The benchmark's helper processes: moto's server, and the producer that feeds the queue.

Both run in child processes so that ``time.process_time()`` in the benchmark process
measures the worker alone; each child reports its own CPU seconds over a pipe.

Why a producer instead of a pre-filled queue: moto's ReceiveMessage costs CPU in
proportion to the number of messages in the queue (it recomputes the queue attributes
for every message it hands out: measured ~13 ms + 0.1 ms per queued message, so a
2000-message backlog costs ~200 ms of emulator CPU per received event). Real SQS has no
such cost. The producer keeps the backlog at a bounded window instead (enough that the
worker never starves), which is also how a steady stream of WAF events looks.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from worker.settings import SQS_MAX_BATCH as _SQS_BATCH

_START_TIMEOUT_S = 60.0
# How often the producer looks at the consumed counter when the window is full. The
# window keeps concurrency + 20 messages visible, so topping it up 50 ms late starves
# nothing, and a tighter loop would spend the shared cores on polling.
_PRODUCER_TICK_S = 0.05


def _serve(conn: Connection) -> None:
    from worker.embedded.moto import embedded_aws

    with embedded_aws() as endpoint:
        conn.send(endpoint)
        while True:
            command = conn.recv()
            if command == "cpu":
                conn.send(time.process_time())
            else:
                return


def _produce(conn: Connection, consumed: Synchronized[int]) -> None:
    import boto3

    session = boto3.Session(
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # moto accepts anything
    )
    conn.send("ready")
    while True:
        command = conn.recv()
        if command[0] == "abort":
            continue  # arrived after its feed had ended
        if command[0] != "feed":
            return
        _, endpoint, queue_url, bodies, window = command
        sqs = session.client("sqs", endpoint_url=endpoint)
        sent = 0
        primed = False
        aborted = False
        while sent < len(bodies) and not aborted:
            room = window - (sent - consumed.value)
            remaining = len(bodies) - sent
            # Top up in batches of 10 where the window allows, by halves of a small one.
            if room >= min(_SQS_BATCH, max(1, window // 2), remaining):
                chunk = bodies[sent : sent + min(_SQS_BATCH, remaining, room)]
                entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
                response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
                sent += len(response.get("Successful", []))
                continue
            if not primed:
                primed = True
                conn.send(("primed", sent, time.process_time()))
            time.sleep(_PRODUCER_TICK_S)
            aborted = conn.poll()
        if aborted:
            conn.recv()
        if not primed:
            conn.send(("primed", sent, time.process_time()))
        conn.send(("fed", sent, time.process_time()))


@contextlib.contextmanager
def helper_processes() -> Iterator[tuple[EmulatorProcess, ProducerProcess]]:
    """Start moto and the producer side by side (each takes seconds to import); stop both."""
    emulator, producer = EmulatorProcess(), ProducerProcess()
    try:
        emulator.start()
        producer.start()
        emulator.ready()
        producer.ready()
        yield emulator, producer
    finally:
        producer.stop()
        emulator.stop()


class _Child:
    """A spawned child that answers over a pipe; the parent may run threads already."""

    def __init__(self, target: Any, *args: Any, name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=target, args=(child, *args), name=name, daemon=True)
        self._name = name
        self.hello = ""

    def start(self) -> None:
        """Start the child; ``ready`` waits for it."""
        self._process.start()

    def ready(self) -> None:
        """Wait for the child's first message (moto sends its endpoint URL)."""
        try:
            if not self._conn.poll(_START_TIMEOUT_S):
                raise RuntimeError(f"{self._name} did not start within {_START_TIMEOUT_S:.0f} s")
            self.hello = str(self._conn.recv())
        except (EOFError, RuntimeError) as exc:
            self._process.kill()
            raise RuntimeError(f"{self._name} failed to start: {exc or 'it exited'}") from None

    # Seconds a child gets to leave on its own after "stop" before it is terminated.
    stop_grace_s = 10.0

    def stop(self) -> None:
        if self._process.pid is None:
            return  # never started
        with contextlib.suppress(BrokenPipeError, OSError):
            self._conn.send(("stop",))
        self._process.join(timeout=self.stop_grace_s)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)


class EmulatorProcess(_Child):
    """moto's server (``worker.embedded.moto``) in a child; ``endpoint`` is its URL once ready."""

    # moto keeps nothing worth a graceful exit, which waits out werkzeug's 0.5 s poll.
    stop_grace_s = 0.1

    def __init__(self) -> None:
        super().__init__(_serve, name="bench-moto")

    @property
    def endpoint(self) -> str:
        return self.hello

    def cpu_s(self) -> float:
        """CPU seconds the emulator process has used so far."""
        self._conn.send("cpu")
        return float(self._conn.recv())


class ProducerProcess(_Child):
    """Sends a point's messages, keeping at most ``window`` of them not yet consumed.

    The benchmark counts terminal outcomes into ``consumed`` (shared memory); the
    producer tops the queue up as they come in.
    """

    def __init__(self) -> None:
        self.consumed: Synchronized[int] = multiprocessing.get_context("spawn").Value("q", 0)
        super().__init__(_produce, self.consumed, name="bench-producer")
        self._cpu_start = 0.0

    def consume(self) -> None:
        with self.consumed.get_lock():
            self.consumed.value += 1

    def feed(self, endpoint: str, queue_url: str, bodies: Sequence[str], window: int) -> int:
        """Start feeding; return once the first window is in the queue (how many were sent)."""
        with self.consumed.get_lock():
            self.consumed.value = 0
        self._conn.send(("feed", endpoint, queue_url, list(bodies), window))
        _, sent, self._cpu_start = self._conn.recv()
        return int(sent)

    def abort(self) -> None:
        """Stop feeding early (the worker gave up); ``wait`` still reports."""
        self._conn.send(("abort",))

    def wait(self) -> tuple[int, float]:
        """Wait for the feed to end; return messages sent and the producer's CPU seconds."""
        _, sent, cpu_end = self._conn.recv()
        return int(sent), cpu_end - self._cpu_start
