"""The allowlist and block targets (pure)."""

from __future__ import annotations

import pytest

from worker.response.addresses import AddressRefused, Allowlist, block_target, canonical


def test_reserved_ranges_are_in_the_allowlist_until_released() -> None:
    # GIVEN the default allowlist and one releasing the documentation ranges
    default = Allowlist.build()
    released = Allowlist.build(release=["documentation"])
    # WHEN a documentation address is targeted
    # THEN only the released one lets it through
    with pytest.raises(AddressRefused):
        block_target("203.0.113.9", prefix="address", allowlist=default)
    assert str(block_target("203.0.113.9", prefix="address", allowlist=released)) == "203.0.113.9/32"


@pytest.mark.parametrize("category", ["private", "loopback", "link_local"])
def test_a_released_category_may_be_blocked_but_never_ranges_stay(category: str) -> None:
    # GIVEN every category released
    allowlist = Allowlist.build(release=[category])
    sample = {"private": "10.0.0.1", "loopback": "127.0.0.2", "link_local": "169.254.0.9"}[category]
    # WHEN its address and a multicast one are targeted
    # THEN the released one is allowed, the multicast one never
    assert block_target(sample, prefix="address", allowlist=allowlist)
    with pytest.raises(AddressRefused):
        block_target("239.1.2.3", prefix="address", allowlist=allowlist)


def test_network_prefixes_are_the_24_and_the_64() -> None:
    allowlist = Allowlist.build(release=["documentation"])
    assert str(block_target("203.0.113.9", prefix="network", allowlist=allowlist)) == "203.0.113.0/24"
    assert (
        str(block_target("2001:db8:1:2:3::9", prefix="network", allowlist=allowlist)) == "2001:db8:1:2::/64"
    )


def test_an_ipv4_mapped_address_is_its_ipv4_address() -> None:
    allowlist = Allowlist.build(release=["documentation"])
    assert str(block_target("::ffff:203.0.113.9", prefix="address", allowlist=allowlist)) == "203.0.113.9/32"


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="not a CIDR"):
        Allowlist.build(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="unknown reserved range"):
        Allowlist.build(release=["public"])


def test_canonical_spelling() -> None:
    assert canonical("2001:DB8:0::1/128") == "2001:db8::1/128"
