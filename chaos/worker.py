"""The instrumented worker one chaos process runs: ``python -m chaos.worker``.

The real worker (consumer, processor, store, notifier, monitor scheduler) built from
``SECOPS_*`` settings exactly as ``secops run`` builds it, with three differences:

- its own boto3 clients carry the SNS and DynamoDB fault hooks;
- the runtime is in-process with :class:`~chaos.faults.ChaosModel` (the tests'
  scripted model, with faults) behind a read-timeout deadline;
- the store and the notifier record what they did to the evidence log.

The orchestrator sets ``CHAOS_PROCESS`` (this process's name), ``CHAOS_EVIDENCE_DIR``,
``CHAOS_SEED``, ``CHAOS_FAULT_RATE`` and ``CHAOS_MODEL_LATENCY_S``. Run from the
repository root: the scripted model is imported from ``testkit``.
"""

from __future__ import annotations

import atexit
import faulthandler
import os
import resource
import sys
from pathlib import Path

from agent_runtime.service import build_service
from chaos.evidence import EvidenceLog, instrument
from chaos.faults import ChaosModel, DeadlineTransport, FaultInjector, FaultRates, install_aws_faults
from secops_core.logs import configure_logging
from worker.agents import Agents, RetryPolicy
from worker.agents.inprocess import InProcessTransport
from worker.daemon import Clients, build_worker, run_worker
from worker.settings import Settings

# A stalled model call answers this long after the read timeout gave up on it.
_STALL_PAST_TIMEOUT_S = 1.0
# How long after its consumer stopped a still-running process dumps its threads' stacks.
_LINGER_DUMP_S = 3.0


def main() -> int:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    name = os.environ.get("CHAOS_PROCESS", f"pid{os.getpid()}")
    evidence = EvidenceLog(Path(os.environ["CHAOS_EVIDENCE_DIR"]) / f"{name}.jsonl", process=name)
    rates = FaultRates.from_rate(float(os.environ.get("CHAOS_FAULT_RATE", "0")))
    injector = FaultInjector(rates, seed=int(os.environ.get("CHAOS_SEED", "0")), evidence=evidence)

    clients = Clients.from_settings(settings)
    install_aws_faults(clients, injector)
    model = ChaosModel(
        injector,
        latency_s=float(os.environ.get("CHAOS_MODEL_LATENCY_S", "0.05")),
        stall_s=settings.runtime_read_timeout_s + _STALL_PAST_TIMEOUT_S,
    )
    transport = DeadlineTransport(
        InProcessTransport(build_service(settings, model=model)),
        read_timeout_s=settings.runtime_read_timeout_s,
        evidence=evidence,
    )
    worker = build_worker(
        settings, clients=clients, agents=Agents.over(transport, RetryPolicy.from_settings(settings))
    )
    instrument(worker, evidence)
    evidence.record("worker_started", owner=worker.owner, fault_rate=rates.runtime_error)
    # Registered first, so it runs last: the interpreter has joined its threads by then.
    atexit.register(evidence.record, "interpreter_exiting")
    code = run_worker(worker)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    evidence.record(
        "worker_stopped",
        code=code,
        abandoned=worker.consumer.abandoned,
        cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
    )
    # A process that lingers after its consumer stopped shows in its log what holds it.
    faulthandler.dump_traceback_later(_LINGER_DUMP_S, exit=False)
    if worker.consumer.abandoned:
        # As `secops run` does: no interpreter finalization around abandoned work threads.
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
