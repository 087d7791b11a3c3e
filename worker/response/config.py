"""The response settings read into the objects the response package uses, and checked
at start-up with one clear message each (the settings object calls
:func:`response_problems` from its validator)."""

from __future__ import annotations

from typing import Protocol

from worker.response.addresses import Allowlist, IpVersion
from worker.response.keys import WAF_MAX_ADDRESSES
from worker.response.records import BlockCaps, IpSetRef


class Settings(Protocol):
    """The response settings of :class:`worker.settings.Settings`, named here without
    importing it (the settings call :func:`response_problems` from their validator)."""

    @property
    def response_mode(self) -> str: ...
    @property
    def response_ip_set_v4(self) -> str | None: ...
    @property
    def response_ip_set_v6(self) -> str | None: ...
    @property
    def response_allowlist(self) -> str: ...
    @property
    def response_blockable_ranges(self) -> str: ...
    @property
    def response_duration_s(self) -> int: ...
    @property
    def response_max_duration_s(self) -> int: ...
    @property
    def response_max_per_hour(self) -> int: ...
    @property
    def response_max_total(self) -> int: ...


def _items(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def allowlist(settings: Settings) -> Allowlist:
    return Allowlist.build(
        _items(settings.response_allowlist), release=_items(settings.response_blockable_ranges)
    )


def ip_sets(settings: Settings) -> dict[IpVersion, IpSetRef]:
    """The configured IP sets by address version."""
    sets: dict[IpVersion, IpSetRef] = {}
    if settings.response_ip_set_v4:
        sets["IPV4"] = IpSetRef.from_arn(settings.response_ip_set_v4, version="IPV4")
    if settings.response_ip_set_v6:
        sets["IPV6"] = IpSetRef.from_arn(settings.response_ip_set_v6, version="IPV6")
    return sets


def caps(settings: Settings) -> BlockCaps:
    return BlockCaps(per_hour=settings.response_max_per_hour, total=settings.response_max_total)


def response_problems(settings: Settings) -> list[str]:
    """What is wrong with the response settings, one sentence each."""
    problems: list[str] = []
    for variable, value in (
        ("SECOPS_RESPONSE_IP_SET_V4", settings.response_ip_set_v4),
        ("SECOPS_RESPONSE_IP_SET_V6", settings.response_ip_set_v6),
    ):
        if value:
            try:
                IpSetRef.from_arn(value, version="IPV4")
            except ValueError as exc:
                problems.append(f"{variable}: {exc}")
    try:
        allowlist(settings)
    except ValueError as exc:
        problems.append(f"SECOPS_RESPONSE_ALLOWLIST / SECOPS_RESPONSE_BLOCKABLE_RANGES: {exc}")
    if settings.response_mode != "off" and not (settings.response_ip_set_v4 or settings.response_ip_set_v6):
        problems.append(
            f"SECOPS_RESPONSE_MODE={settings.response_mode} needs SECOPS_RESPONSE_IP_SET_V4 and/or "
            "SECOPS_RESPONSE_IP_SET_V6 (the ARNs `secops setup --ip-set NAME` prints)"
        )
    if settings.response_max_total > WAF_MAX_ADDRESSES:
        problems.append(
            f"SECOPS_RESPONSE_MAX_TOTAL={settings.response_max_total}: an AWS WAF IP set holds at most "
            f"{WAF_MAX_ADDRESSES} addresses"
        )
    if settings.response_duration_s > settings.response_max_duration_s:
        problems.append(
            f"SECOPS_RESPONSE_DURATION_S={settings.response_duration_s} is above "
            f"SECOPS_RESPONSE_MAX_DURATION_S={settings.response_max_duration_s}"
        )
    return problems
