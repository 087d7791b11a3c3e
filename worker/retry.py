"""The one retry policy (tenacity) for calls retried inside this process: the pipeline's
small store writes, the monitor job's store calls, the output channels' publishes and
the runtime transport all build their loops here (docs/architecture.md, "Retries").

Vendor-free: which failures are worth another attempt is the caller's ``retry_on``
(the worker's error family in the pipeline, AWS error codes in the channels).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential, wait_exponential_jitter

T = TypeVar("T")


def backoff(base_s: float, *, factor: float) -> wait_base:
    """``base_s``, then ``base_s * factor``, ``base_s * factor**2`` ... between attempts."""
    return wait_exponential(multiplier=base_s, exp_base=factor, min=0)


def default_wait() -> wait_base:
    """0.5 s doubling to 8 s with jitter: five attempts take seconds, well inside a lease."""
    return wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)


def retrying(
    *,
    max_attempts: int,
    wait: wait_base,
    retry_on: Callable[[BaseException], bool],
    logger: Any = None,
    log_event: str | None = None,
    before_sleep: Callable[[RetryCallState], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stop: stop_base | None = None,
) -> Retrying:
    """A tenacity ``Retrying`` that retries ``retry_on`` failures up to ``max_attempts`` in
    all (and ``stop``, if given), logs ``log_event`` on ``logger`` before each sleep (or
    calls ``before_sleep``), and re-raises the last failure."""
    if before_sleep is None and logger is not None and log_event is not None:
        before_sleep = _log_retry(logger, log_event)
    stop_rule: stop_base = stop_after_attempt(max_attempts)
    if stop is not None:
        stop_rule = stop_rule | stop
    return Retrying(
        stop=stop_rule,
        wait=wait,
        retry=retry_if_exception(retry_on),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )


def retried(
    call: Callable[[], T],
    *,
    attempts: int,
    wait: wait_base,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
) -> T:
    """``call()``, retried on ``retry_on`` exceptions; the last one is raised."""
    loop = retrying(max_attempts=attempts, wait=wait, retry_on=lambda exc: isinstance(exc, retry_on))
    return loop(call)


def _log_retry(logger: Any, log_event: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            log_event,
            attempt=state.attempt_number,
            error_code=_code(exc) if exc else None,
            sleep_s=round(state.next_action.sleep, 3) if state.next_action else None,
        )

    return before_sleep


def _code(exc: BaseException) -> str:
    # An AWS error's code is in its response (duck-typed: this module names no vendor).
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "Unknown")
    return type(exc).__name__
