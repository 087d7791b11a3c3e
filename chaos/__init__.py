"""Fault injection for the worker (``make chaos``).

Several real worker processes consume one queue on moto's server while the run injects
faults: model errors, throttling and timeouts in the in-process runtime, throttling and
5xx answers from SNS and DynamoDB at the botocore layer, duplicate and poison messages,
SIGKILLs at random moments and one SIGTERM drain. Each worker writes what it did to a
JSONL evidence file; at the end the orchestrator drains the queue with fault-free
workers and checks the invariants against the store, the DLQ, the notifications SNS
delivered and the evidence.

- :mod:`chaos.run` - the orchestrator (``python -m chaos.run --help``);
- :mod:`chaos.worker` - the instrumented worker entrypoint each process runs;
- :mod:`chaos.faults` - the fault injectors (botocore hooks, model, runtime deadline);
- :mod:`chaos.evidence` - the per-process evidence log and the hooks that feed it;
- :mod:`chaos.plan` - the seeded plan of messages to send;
- :mod:`chaos.invariants` - the checks.
"""
