"""The WAFv2 adapter of the IpSetWriter port: GetIPSet and UpdateIPSet with the LockToken.

This module is where botocore's errors become the worker's (:mod:`worker.errors`):
a lost lock becomes :class:`~worker.response.ipset.LockLost` (the editor retries it),
throttling, 5xx and network faults a :class:`~worker.errors.RetryableError`, a missing
set or a denied permission a :class:`~worker.errors.ConfigurationError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.errors import ConfigurationError, RetryableError
from worker.response.addresses import IpVersion
from worker.response.ipset import IpSetEditor, LockLost
from worker.response.records import IpSetRef, Scope

if TYPE_CHECKING:
    from types_boto3_wafv2.client import WAFV2Client
    from types_boto3_wafv2.type_defs import ListIPSetsRequestTypeDef

_RETRYABLE_CODES = frozenset(
    {"WAFInternalErrorException", "ThrottlingException", "WAFUnavailableEntityException"}
)
_CONFIGURATION_CODES = frozenset(
    {
        "WAFNonexistentItemException",
        "AccessDeniedException",
        "WAFInvalidParameterException",
        "WAFInvalidOperationException",
        "UnrecognizedClientException",
    }
)


class WafIpSets(IpSetEditor):
    """IP sets in AWS WAF (v2). ``clients`` maps a region to a boto3 ``wafv2`` client
    (CLOUDFRONT sets are managed in us-east-1); ``client`` alone serves every region.
    """

    def __init__(
        self,
        *,
        client: WAFV2Client | None = None,
        client_for: Callable[[str | None], WAFV2Client] | None = None,
        **options: Any,
    ) -> None:
        """``options`` are :class:`IpSetEditor`'s (attempts, wait, sleep, max_addresses)."""
        super().__init__(**options)
        if client_for is None:
            if client is None:
                raise ValueError("a wafv2 client or a client factory is needed")
            only = client

            def client_for(_region: str | None) -> WAFV2Client:
                return only

        self._client_for = client_for

    def client(self, ip_set: IpSetRef) -> WAFV2Client:
        return self._client_for(ip_set.region)

    def _read(self, ip_set: IpSetRef) -> tuple[list[str], str]:
        with self._translated(ip_set, "get_ip_set"):
            response = self.client(ip_set).get_ip_set(Name=ip_set.name, Scope=ip_set.scope, Id=ip_set.id)
        return list(response["IPSet"].get("Addresses", [])), str(response["LockToken"])

    def _write(self, ip_set: IpSetRef, addresses: list[str], token: str) -> None:
        with self._translated(ip_set, "update_ip_set"):
            self.client(ip_set).update_ip_set(
                Name=ip_set.name,
                Scope=ip_set.scope,
                Id=ip_set.id,
                Addresses=addresses,
                LockToken=token,
            )

    @contextmanager
    def _translated(self, ip_set: IpSetRef, operation: str) -> Iterator[None]:
        """Around one WAF call on ``ip_set``: its failures become the worker's errors."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = f"WAF {operation} on IP set {ip_set.label}: {code}: {error.get('Message', '')}"
            if code == "WAFOptimisticLockException":
                raise LockLost(message) from None
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in _RETRYABLE_CODES or status >= 500 or status == 429:
                raise RetryableError(message, reason="waf_unavailable") from exc
            if code in _CONFIGURATION_CODES:
                raise ConfigurationError(
                    message + " (check SECOPS_RESPONSE_IP_SET_V4/V6 and the task role's wafv2 permissions)",
                    reason="waf_misconfigured",
                ) from exc
            raise RetryableError(message, reason="waf_error") from exc
        except BotoCoreError as exc:
            raise RetryableError(f"WAF {operation} failed: {exc}", reason="waf_unavailable") from exc


def ensure_ip_set(
    client: WAFV2Client, *, name: str, scope: Scope, version: IpVersion
) -> tuple[IpSetRef, bool]:
    """The IP set ``name`` in ``scope``, created empty if absent; True if it was created.

    An existing set of that name is adopted (its addresses kept) if its address version
    matches; otherwise it is a configuration error.
    """
    params: ListIPSetsRequestTypeDef = {"Scope": scope, "Limit": 100}
    while True:
        page = client.list_ip_sets(**params)
        for summary in page.get("IPSets", []):
            if summary["Name"] == name:
                found = client.get_ip_set(Name=name, Scope=scope, Id=summary["Id"])["IPSet"]
                if found.get("IPAddressVersion") != version:
                    raise ConfigurationError(
                        f"IP set {name} ({scope}) holds {found.get('IPAddressVersion')} addresses, "
                        f"not {version}",
                        reason="waf_misconfigured",
                    )
                return IpSetRef(
                    name=name, id=summary["Id"], scope=scope, version=version, arn=summary["ARN"]
                ), False
        marker = page.get("NextMarker")
        if not marker or not page.get("IPSets"):
            break
        params["NextMarker"] = marker
    created = client.create_ip_set(
        Name=name,
        Scope=scope,
        IPAddressVersion=version,
        Addresses=[],
        Description="Sources blocked for a bounded time by secops-worker (secops block list)",
    )["Summary"]
    return IpSetRef(name=name, id=created["Id"], scope=scope, version=version, arn=created["ARN"]), True


def web_acl_rule(
    sets: Sequence[IpSetRef], *, name: str = "secops-blocked-sources", priority: int = 0
) -> dict[str, Any]:
    """The rule a person adds to the web ACL so the IP sets block (ahead of the other rules)."""
    references = [{"IPSetReferenceStatement": {"ARN": s.arn}} for s in sets]
    statement = references[0] if len(references) == 1 else {"OrStatement": {"Statements": references}}
    return {
        "Name": name,
        "Priority": priority,
        "Action": {"Block": {}},
        "Statement": statement,
        "VisibilityConfig": {
            "SampledRequestsEnabled": True,
            "CloudWatchMetricsEnabled": True,
            "MetricName": name,
        },
    }
