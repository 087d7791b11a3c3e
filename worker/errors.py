"""The worker's typed errors. They drive control flow in the consumer.

- :class:`RetryableError`: try again later (the message goes back with a delay).
- :class:`PermanentError`: bad input; retrying cannot help (recorded as rejected,
  left for SQS's redrive policy to move to the DLQ).
- :class:`AlreadyInProgress`: another consumer holds a live lease on the event.
- :class:`RuntimeUnavailable`: the agent runtime cannot be reached; opens the circuit.
- :class:`StoreUnavailable`: the store cannot take the call now (throttled, down,
  unreachable): retryable.
- :class:`StoreError`: the store refused a call for a reason not known to be
  transient (denied, invalid); the vendor's error is its ``__cause__``.
- :class:`ConfigurationError`: the deployment needs fixing.

Adapters raise these, never their vendor's errors (botocore's ``ClientError``): the
pipeline catches only this family (docs/architecture.md, "Ports").
"""

from __future__ import annotations

from collections.abc import Collection


class WorkerError(Exception):
    """Base class; ``reason`` is a short machine-friendly code, ``message`` a sentence."""

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class RetryableError(WorkerError):
    def __init__(self, message: str, *, reason: str = "retryable", delay_s: float | None = None) -> None:
        super().__init__(message, reason=reason)
        self.delay_s = delay_s


class RuntimeUnavailable(RetryableError):
    """The runtime did not answer (connection refused, timeouts, throttled past retries)."""


class StoreUnavailable(RetryableError):
    def __init__(self, message: str, *, reason: str = "store_unavailable") -> None:
        super().__init__(message, reason=reason)


class StoreError(WorkerError):
    def __init__(self, message: str, *, reason: str = "store_error") -> None:
        super().__init__(message, reason=reason)


class PermanentError(WorkerError):
    def __init__(self, message: str, *, reason: str = "invalid_input") -> None:
        super().__init__(message, reason=reason)


class AlreadyInProgress(WorkerError):
    def __init__(
        self,
        message: str,
        *,
        lease_expires_in_s: float | None = None,
        message_ids: Collection[str] = (),
    ) -> None:
        super().__init__(message, reason="in_progress")
        self.lease_expires_in_s = lease_expires_in_s
        # The message ids that have claimed the event: the holder's own message is among
        # them, a duplicate copy that never claimed is not.
        self.message_ids = frozenset(message_ids)


class ConfigurationError(WorkerError):
    """The deployment needs fixing (a wrong ARN, a missing topic, a denied permission).

    Neither retryable nor permanent: the event is fine, so it must not be rejected into
    the DLQ. The consumer treats it like an outage: the circuit opens and the message
    comes back later, while the error is logged loudly for the operator.
    """
