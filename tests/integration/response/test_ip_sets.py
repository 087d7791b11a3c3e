"""The IpSetWriter contract, run against the in-memory IP sets and WAFv2 on moto's
server over HTTP: merge without duplicates, idempotent removal, read back, lost lock
tokens retried (injected, and real ones between racing writers), WAF's size limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tenacity import wait_none

import worker.platform.aws
from tests.fixtures.waf import create_ip_set, lock_storm, stored_addresses
from worker.errors import ConfigurationError, PermanentError, RetryableError
from worker.response.ipset import IpSetEditor
from worker.response.memory import MemoryIpSets
from worker.response.records import IpSetRef
from worker.response.wafv2 import WafIpSets


@pytest.fixture(scope="module")
def wafv2(moto_endpoint: str) -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        yield worker.platform.aws.client("wafv2")


class Backend:
    """One backend: how to build a writer (a replica) and make a set, and what it holds."""

    def __init__(
        self,
        writer: Callable[..., IpSetEditor],
        make: Callable[[str, str], IpSetRef],
        stored: Callable[[IpSetRef], list[str]],
        storm: Callable[[IpSetEditor, int], Any],
    ) -> None:
        self.writer = writer
        self.make = make
        self.stored = stored
        self.storm = storm


@pytest.fixture(params=["memory", "wafv2"])
def backend(request: pytest.FixtureRequest, unique: str) -> Backend:
    if request.param == "memory":
        shared = MemoryIpSets(wait=wait_none())

        def memory_storm(writer: IpSetEditor, failures: int) -> Any:
            left = [failures]

            def lose(_ip_set: IpSetRef) -> bool:
                left[0] -= 1
                return left[0] >= 0

            shared.lose_write = lose
            return _Restore(shared)

        return Backend(
            writer=lambda **kw: shared if not kw else _memory_with(shared, **kw),
            make=lambda name, version: shared.create(
                IpSetRef(name=f"{name}-{unique}", id=f"{name}-{unique}", scope="REGIONAL", version=version)  # type: ignore[arg-type]
            ),
            stored=lambda ip_set: shared._read(ip_set)[0],
            storm=memory_storm,
        )
    client = request.getfixturevalue("wafv2")
    return Backend(
        writer=lambda **kw: WafIpSets(client=worker.platform.aws.client("wafv2"), wait=wait_none(), **kw),
        make=lambda name, version: create_ip_set(client, f"{name}-{unique}", version=version),  # type: ignore[arg-type]
        stored=lambda ip_set: stored_addresses(client, ip_set),
        storm=lambda writer, failures: lock_storm(writer.client(_ANY), failures),  # type: ignore[attr-defined]
    )


_ANY = IpSetRef(name="-", id="-", scope="REGIONAL", version="IPV4")


class _Restore:
    def __init__(self, shared: MemoryIpSets) -> None:
        self.shared = shared

    def __enter__(self) -> _Restore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shared.lose_write = lambda _ip_set: False


def _memory_with(shared: MemoryIpSets, **kwargs: Any) -> MemoryIpSets:
    for name, value in kwargs.items():
        setattr(shared, name, value)
    return shared


def test_add_merges_and_never_duplicates(backend: Backend) -> None:
    # GIVEN a set holding a person's address
    ip_set = backend.make("v4", "IPV4")
    writer = backend.writer()
    writer.add(ip_set, ["198.51.100.7/32"])
    # WHEN the same network is added twice, once in another spelling
    first = writer.add(ip_set, ["203.0.113.9/32"])
    again = writer.add(ip_set, ["203.0.113.9/32", "203.0.113.9/32"])
    # THEN it is there once, beside the person's address, and the second add changed nothing
    assert sorted(backend.stored(ip_set)) == ["198.51.100.7/32", "203.0.113.9/32"]
    assert first.added == ("203.0.113.9/32",)
    assert again.added == ()
    assert again.size == 2


def test_ipv6_networks_are_compared_in_one_spelling(backend: Backend) -> None:
    # GIVEN an IPv6 set holding an address spelled in upper case
    ip_set = backend.make("v6", "IPV6")
    writer = backend.writer()
    writer.add(ip_set, ["2001:DB8::1/128"])
    # WHEN the same address is added in its canonical spelling, then removed in a third
    writer.add(ip_set, ["2001:db8::1/128"])
    assert len(backend.stored(ip_set)) == 1
    change = writer.remove(ip_set, ["2001:0db8:0:0::1/128"])
    # THEN it was one address all along
    assert change.removed == ("2001:db8::1/128",)
    assert backend.stored(ip_set) == []


def test_remove_is_idempotent_and_leaves_the_rest(backend: Backend) -> None:
    # GIVEN a set with two addresses
    ip_set = backend.make("rm", "IPV4")
    writer = backend.writer()
    writer.add(ip_set, ["203.0.113.9/32", "198.51.100.7/32"])
    # WHEN one is removed twice
    first = writer.remove(ip_set, ["203.0.113.9/32"])
    second = writer.remove(ip_set, ["203.0.113.9/32"])
    # THEN the other stays and the second removal changed nothing
    assert backend.stored(ip_set) == ["198.51.100.7/32"]
    assert (first.removed, second.removed) == (("203.0.113.9/32",), ())


def test_a_storm_of_lost_lock_tokens_is_ridden_out(backend: Backend) -> None:
    # GIVEN a writer whose next 9 writes lose their lock token (12 attempts allowed)
    ip_set = backend.make("storm", "IPV4")
    writer = backend.writer()
    with backend.storm(writer, 9):
        # WHEN it adds an address
        change = writer.add(ip_set, ["203.0.113.9/32"])
    # THEN the tenth write lands, once
    assert change.attempts == 10
    assert backend.stored(ip_set) == ["203.0.113.9/32"]


def test_a_storm_past_the_budget_is_a_retryable_error(backend: Backend) -> None:
    # GIVEN a writer allowed 3 attempts, all of which lose their lock
    ip_set = backend.make("storm2", "IPV4")
    writer = backend.writer(attempts=3)
    with backend.storm(writer, 100), pytest.raises(RetryableError) as raised:
        # WHEN it adds an address
        writer.add(ip_set, ["203.0.113.9/32"])
    # THEN the caller may try again later, and nothing was written
    assert raised.value.reason == "ip_set_contended"
    assert backend.stored(ip_set) == []


def test_racing_writers_lose_nothing_and_duplicate_nothing(backend: Backend) -> None:
    # GIVEN four replicas writing one set at once: each adds its own address and a shared one
    ip_set = backend.make("race", "IPV4")
    writers = [backend.writer() for _ in range(4)]

    def add(i: int) -> None:
        writers[i].add(ip_set, [f"198.51.100.{i + 1}/32", "203.0.113.9/32"])

    # WHEN they race
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(add, range(4)))
    # THEN every address is there exactly once
    stored = backend.stored(ip_set)
    assert sorted(stored) == sorted({*(f"198.51.100.{i}/32" for i in range(1, 5)), "203.0.113.9/32"})
    assert len(stored) == len(set(stored))


def test_a_merge_past_the_size_limit_is_refused(backend: Backend) -> None:
    # GIVEN a set at the limit (a limit of 2 stands for WAF's 10,000)
    ip_set = backend.make("full", "IPV4")
    writer = backend.writer(max_addresses=2)
    writer.add(ip_set, ["198.51.100.1/32", "198.51.100.2/32"])
    # WHEN one more is added
    with pytest.raises(PermanentError) as raised:
        writer.add(ip_set, ["203.0.113.9/32"])
    # THEN it is refused and the set is as it was; an address already there is fine
    assert raised.value.reason == "ip_set_full"
    assert writer.add(ip_set, ["198.51.100.1/32"]).added == ()
    assert len(backend.stored(ip_set)) == 2


def test_a_missing_set_is_a_configuration_error(backend: Backend) -> None:
    # GIVEN a reference to a set that does not exist
    ghost = IpSetRef(
        name="ghost", id="00000000-0000-0000-0000-000000000000", scope="REGIONAL", version="IPV4"
    )
    # WHEN it is written, THEN the deployment must be fixed (not retried, not dropped)
    with pytest.raises(ConfigurationError):
        backend.writer().add(ghost, ["203.0.113.9/32"])
