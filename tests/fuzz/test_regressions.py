"""Minimal failing examples the fuzz tests found, kept as plain regression tests.

Each one crashed (or leaked, or hung) before its fix; the property tests in this
directory would find them again, but only by chance: these fail deterministically.
"""

from __future__ import annotations

import pytest

from agent_runtime.errors import ContractError, ErrorCode
from agent_runtime.normalize import normalize_event

EVENT = {"timestamp": 1_795_000_000_000, "action": "BLOCK", "source_ip": "192.0.2.1", "uri": "/"}


@pytest.mark.parametrize("timestamp", [10**400, -(10**400), 3 * 10**308])
def test_an_epoch_timestamp_too_large_for_a_float_is_rejected(timestamp: int) -> None:
    # Valid JSON integers; ``value / 1000`` raised OverflowError outside the try.
    with pytest.raises(ContractError) as caught:
        normalize_event({**EVENT, "timestamp": timestamp})
    assert caught.value.code is ErrorCode.INVALID_EVENT
    assert len(caught.value.message) < 100
