"""Inspect and replay the dead-letter queue (``secops dlq inspect|replay``).

``messages`` holds what both tools read and the reader that gives every message back,
``inspect`` looks without consuming, ``replay`` moves a filtered selection back at a
rate, and ``native`` hands the whole DLQ to SQS's own redrive (StartMessageMoveTask).
"""

from worker.ops.dlq.inspect import DlqInspector, InspectionReport
from worker.ops.dlq.messages import NOT_RECORDED, DlqEntry, DlqMessage, ProgressCallback
from worker.ops.dlq.native import NativeMoveUnsupported, native_move
from worker.ops.dlq.replay import DlqReplayer, ReplayFilter, ReplaySummary, TokenBucket

__all__ = [
    "NOT_RECORDED",
    "DlqEntry",
    "DlqInspector",
    "DlqMessage",
    "DlqReplayer",
    "InspectionReport",
    "NativeMoveUnsupported",
    "ProgressCallback",
    "ReplayFilter",
    "ReplaySummary",
    "TokenBucket",
    "native_move",
]
