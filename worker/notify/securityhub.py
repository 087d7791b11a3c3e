"""The Security Hub channel: each incident is one ASFF finding, updated in place.

Every milestone re-imports the incident's finding with ``BatchImportFindings`` (same
``Id``, new ``UpdatedAt``, the grown totals) into the account's default product for
custom integrations. Resolving an incident is the operator's decision, so it also
goes through the customer-side API, ``BatchUpdateFindings``, which sets the workflow
status to ``RESOLVED`` with the operator's note; ``BatchImportFindings`` may not change
a finding's workflow once it exists.

Both calls answer 200 with per-finding failures (``FailedFindings`` /
``UnprocessedFindings``); those are classified like whole-call errors: throttling and
internal errors are retried with the shared discipline (worker/notify/retry.py),
anything else raises :class:`FindingRejected` with a reason an operator can act on.
It implements ``IncidentChannel`` (docs/architecture.md, "Ports").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import structlog
from botocore.exceptions import BotoCoreError, ClientError
from tenacity.wait import wait_base

from secops_core.contract import Analysis, WafEvent
from worker.errors import ConfigurationError, RetryableError
from worker.incidents.milestones import RESOLVED, Milestone
from worker.incidents.records import IncidentRecord
from worker.notify.asff import (
    FindingContext,
    build_finding,
    default_product_arn,
    finding_id,
    resolution_note,
)
from worker.notify.channel import ChannelName
from worker.notify.retry import Failures, Rejected, default_wait, error_code, error_message, is_transient
from worker.notify.retry import call as call_with_retries
from worker.notify.sanitize import clean
from worker.platform import aws, clock
from worker.settings import Settings

if TYPE_CHECKING:
    from types_boto3_securityhub.client import SecurityHubClient
    from types_boto3_securityhub.type_defs import AwsSecurityFindingTypeDef, NoteUpdateTypeDef
    from types_boto3_sts.client import STSClient

log = structlog.get_logger("worker.securityhub")

# Security Hub's own throttling and internal codes, beside the shared ones: whole-call
# errors end in "Exception" (LimitExceededException is its 429), per-finding ErrorCodes
# in FailedFindings may not.
_TRANSIENT = frozenset(
    {"LimitExceededException", "LimitExceeded", "TooManyRequests", "Internal", "InternalServerError"}
)
_NOT_ENABLED = (
    "securityhub_not_enabled",
    "Security Hub is not enabled in this account and region, or the product is not: "
    "run `aws securityhub enable-security-hub` once (README, Security Hub)",
)
_NOT_AUTHORIZED = (
    "securityhub_not_authorized",
    "the worker's role lacks securityhub:BatchImportFindings on the product ARN "
    "(or BatchUpdateFindings on the hub, to resolve)",
)
_INVALID = ("securityhub_invalid_finding", "Security Hub refused the finding's fields")
# Codes that retrying cannot fix, and the reason and hint reported for them.
_PERMANENT: dict[str, tuple[str, str]] = {
    "InvalidAccessException": _NOT_ENABLED,
    "InvalidAccess": _NOT_ENABLED,
    "AccessDeniedException": _NOT_AUTHORIZED,
    "AccessDenied": _NOT_AUTHORIZED,
    "UnrecognizedClientException": ("securityhub_not_authorized", "the worker's credentials are not valid"),
    "InvalidClientTokenId": ("securityhub_not_authorized", "the worker's credentials are not valid"),
    "InvalidInputException": _INVALID,
    "InvalidInput": _INVALID,
    "ValidationException": _INVALID,
    "ResourceNotFoundException": (
        "securityhub_not_found",
        "the product or finding does not exist in this region; check SECOPS_SECURITYHUB_PRODUCT_ARN",
    ),
}
_DEFAULT_PERMANENT = ("securityhub_rejected", "Security Hub refused the finding")


class FindingRejected(Rejected):
    """Security Hub refused a finding for a reason that retrying cannot fix.

    A configuration error, like SNS's ``NotificationRejected``: the deployment needs
    fixing (enable Security Hub, grant the permission), the event is fine. ``reason`` is
    ``securityhub_not_enabled``, ``securityhub_not_authorized``,
    ``securityhub_invalid_finding``, ``securityhub_not_found`` or ``securityhub_rejected``;
    ``code`` is Security Hub's error code.
    """


def _is_transient(exc: BaseException) -> bool:
    if is_transient(exc):
        return True
    code = error_code(exc)
    return isinstance(exc, ClientError) and (code in _TRANSIENT or "throttl" in code.lower())


_FAILURES = Failures(
    events="securityhub.",
    rejected=FindingRejected,
    permanent=lambda code: _PERMANENT.get(code, _DEFAULT_PERMANENT),
    invalid_reason=_INVALID[0],
    invalid_hint=_INVALID[1],
    failed_reason="notify_failed",
    retry_on=_is_transient,
    # A proxy's HTML error page or a long validation text: one short line.
    detail=lambda exc: clean(error_message(exc), 300),
)


def _failure(operation: str, failed: Sequence[Mapping[str, object]], count: int) -> ClientError:
    """A 200 answer with per-finding failures, as the ClientError it amounts to, so one
    classification serves both (its status is the 200 it came with: not a 5xx).
    """
    first = failed[0] if failed else {}
    code = str(first.get("ErrorCode") or "FailedWithoutCode")
    message = str(first.get("ErrorMessage") or f"{count} finding(s) failed")
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "RequestId": "",
                "HostId": "",
                "HTTPStatusCode": 200,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        operation,
    )


class SecurityHubChannel:
    """Publishes incident milestones to Security Hub as one ASFF finding per incident."""

    def __init__(
        self,
        *,
        client: SecurityHubClient,
        sts_client: STSClient | None = None,
        product_arn: str | None = None,
        account_id: str | None = None,
        max_attempts: int = 5,
        wait: wait_base | None = None,
        now: Callable[[], datetime] = clock.now,
    ) -> None:
        """``client`` is a boto3 Security Hub client making one attempt per call (the
        retries happen here); ``sts_client`` finds the account id once, when neither
        ``account_id`` is given nor asked before. ``product_arn`` overrides the
        account's default product.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self._sts = sts_client
        self._product_arn = product_arn
        self._account_id = account_id
        self._max_attempts = max_attempts
        self._wait = wait or default_wait()
        self._now = now
        self._context: FindingContext | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        client: SecurityHubClient | None = None,
        sts_client: STSClient | None = None,
    ) -> SecurityHubChannel:
        """The channel as configured: ``SECOPS_SECURITYHUB_REGION`` (else the worker's
        region), ``SECOPS_SECURITYHUB_PRODUCT_ARN`` (else the default product) and
        ``SECOPS_NOTIFY_MAX_ATTEMPTS``; clients are made when not given.
        """
        session = aws.aws_session(settings.securityhub_region or settings.aws_region)
        local = settings.localstack
        return cls(
            client=client
            or aws.client(
                "securityhub", session=session, max_attempts=1, read_timeout=10.0, localstack=local
            ),
            sts_client=sts_client or aws.client("sts", session=session, max_attempts=3, localstack=local),
            product_arn=settings.securityhub_product_arn,
            max_attempts=settings.notify_max_attempts,
        )

    @property
    def name(self) -> ChannelName:
        return "securityhub"

    def context(self) -> FindingContext:
        """Product ARN, account, partition and region: found once, then reused."""
        with self._lock:
            if self._context is None:
                account = self._account_id or self._caller_account()
                partition = str(self._client.meta.partition)
                region = str(self._client.meta.region_name)
                self._context = FindingContext(
                    product_arn=self._product_arn or default_product_arn(partition, region, account),
                    account_id=account,
                    partition=partition,
                    region=region,
                )
            return self._context

    def publish_incident(
        self,
        incident: IncidentRecord,
        milestone: Milestone,
        *,
        event: WafEvent | None = None,
        analysis: Analysis | None = None,
    ) -> str:
        """Import (create or update) the incident's finding; on ``resolved``, also set its
        workflow status. Returns the finding id.

        Raises :class:`FindingRejected` when Security Hub refuses for good and
        :class:`~worker.errors.RetryableError` (reason ``notify_failed``) once the
        attempts are spent on throttling, internal errors or connection failures.
        """
        context = self.context()
        finding = build_finding(incident, milestone, context, now=self._now(), event=event, analysis=analysis)
        logger = log.bind(incident=incident.id, milestone=milestone.id, finding_id=finding["Id"])
        attempts = self._call(logger, "BatchImportFindings", lambda: self._import(finding))
        if milestone.id == RESOLVED.id:
            attempts += self._call(logger, "BatchUpdateFindings", lambda: self._resolve(incident, context))
        logger.info("securityhub.published", attempts=attempts, count=incident.count)
        return str(finding["Id"])

    # ---- calls -----------------------------------------------------------------------------

    def _import(self, finding: dict[str, Any]) -> None:
        # The ASFF document is built as plain JSON (worker/notify/asff.py); the stubs'
        # TypedDict of a finding is the same shape, named once here.
        response = self._client.batch_import_findings(Findings=[cast("AwsSecurityFindingTypeDef", finding)])
        failed = response.get("FailedFindings") or []
        if response.get("FailedCount", len(failed)) or failed:
            raise _failure("BatchImportFindings", failed, int(response.get("FailedCount") or len(failed)))

    def _resolve(self, incident: IncidentRecord, context: FindingContext) -> None:
        response = self._client.batch_update_findings(
            FindingIdentifiers=[{"Id": finding_id(incident), "ProductArn": context.product_arn}],
            Workflow={"Status": "RESOLVED"},
            Note=resolution_note(incident),
        )
        unprocessed = response.get("UnprocessedFindings") or []
        if unprocessed:
            raise _failure("BatchUpdateFindings", unprocessed, len(unprocessed))

    def note_finding(self, finding: str, note: NoteUpdateTypeDef) -> None:
        """Set ``note`` on the finding ``finding`` (a block of its incident's source)."""
        context = self.context()
        logger = log.bind(finding_id=finding)
        self._call(logger, "BatchUpdateFindings", lambda: self._note(finding, context, note))
        logger.info("securityhub.noted")

    def _note(self, finding: str, context: FindingContext, note: NoteUpdateTypeDef) -> None:
        response = self._client.batch_update_findings(
            FindingIdentifiers=[{"Id": finding, "ProductArn": context.product_arn}], Note=note
        )
        unprocessed = response.get("UnprocessedFindings") or []
        if unprocessed:
            raise _failure("BatchUpdateFindings", unprocessed, len(unprocessed))

    def _call(self, logger: Any, operation: str, call: Callable[[], None]) -> int:
        """``call()`` with retries; the attempts it took. Failures are classified."""
        _, attempts = call_with_retries(
            call,
            failures=_FAILURES,
            max_attempts=self._max_attempts,
            wait=self._wait,
            logger=logger.bind(operation=operation),
            not_sent=f"Security Hub {operation}",
            refused=f"Security Hub refused {operation}",
            failed=f"Security Hub {operation}",
        )
        return attempts

    def _caller_account(self) -> str:
        """The account the credentials belong to: a finding's ``AwsAccountId`` must be it."""
        if self._sts is None:
            raise ConfigurationError(
                "the Security Hub channel needs the account id: give an STS client or account_id",
                reason="securityhub_no_account",
            )
        try:
            return str(self._sts.get_caller_identity()["Account"])
        except (ClientError, BotoCoreError) as exc:
            raise RetryableError(
                f"STS GetCallerIdentity failed: {error_code(exc)}", reason="notify_failed"
            ) from exc
