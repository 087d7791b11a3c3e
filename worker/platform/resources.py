"""The AWS resources the worker uses: created by ``secops setup``, resolved at start-up."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import structlog
from botocore.exceptions import ClientError

from worker.settings import Settings

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_events.client import EventBridgeClient
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.literals import BucketLocationConstraintType
    from types_boto3_s3.type_defs import NotificationConfigurationTypeDef
    from types_boto3_sns.client import SNSClient
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.literals import QueueAttributeNameType

log = structlog.get_logger("worker.resources")

# The DLQ keeps messages for the SQS maximum, 14 days, so operators have time to look.
DLQ_RETENTION_S = 14 * 24 * 3600
# What SQS answers for a queue that does not exist (the query and the JSON protocol).
_NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


@dataclass(frozen=True)
class Resources:
    queue_url: str
    dlq_url: str | None
    critical_topic_arn: str
    monitoring_topic_arn: str
    table_name: str
    # Set when the chat channel is enabled (SECOPS_CHANNELS).
    chat_topic_arn: str | None = None


class TableOwner(Protocol):
    """The store's side of set-up: it creates its table (and index) when missing."""

    def create_table(self) -> bool: ...


class ResourceError(Exception):
    """A resource is missing or unreachable; the message says what to run."""


def setup_resources(
    settings: Settings,
    *,
    sqs: SQSClient,
    sns: SNSClient,
    store: TableOwner,
    s3: S3Client | None = None,
    log_bucket: str | None = None,
    create_bucket: bool = False,
    events: EventBridgeClient | None = None,
) -> tuple[Resources, dict[str, str]]:
    """Create the queue and DLQ (with redrive), topics, table and index. Idempotent.

    With ``log_bucket`` (and an ``s3`` client), that bucket's new objects are notified to
    the queue too (:func:`connect_log_bucket`). The bucket is checked first
    (:func:`check_log_bucket`; created when missing only with ``create_bucket``), so a
    missing one raises :class:`ResourceError` before anything was changed. With an ``events`` client (the
    EventBridge channel is enabled), its bus too (:func:`ensure_event_bus`). Returns the
    resources and, per resource, ``created``, ``exists`` or what was configured.
    """
    report: dict[str, str] = {}
    if log_bucket and s3 is None:
        raise ValueError("a log bucket needs an s3 client")
    if log_bucket and s3 is not None:
        # Before anything is created or changed: a missing bucket changes nothing.
        report[f"s3://{log_bucket}"] = check_log_bucket(s3, log_bucket, create=create_bucket)
    dlq_url, report[settings.dlq_name] = _ensure_queue(
        sqs, settings.dlq_name, {"MessageRetentionPeriod": str(DLQ_RETENTION_S)}
    )
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.max_receive_count)})
    queue_attributes: dict[QueueAttributeNameType, str] = {
        "VisibilityTimeout": str(settings.visibility_timeout_s),
        "ReceiveMessageWaitTimeSeconds": str(settings.wait_time_s),
        "RedrivePolicy": redrive,
    }
    if settings.queue_url:
        queue_url = settings.queue_url
        report["queue"] = "given"
    else:
        queue_url, report[settings.queue_name] = _ensure_queue(sqs, settings.queue_name, queue_attributes)
    # Re-apply on an existing queue: a changed maxReceiveCount or timeout takes effect.
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=queue_attributes)
    topics = {}
    wanted = [
        (settings.critical_topic_name, settings.critical_topic_arn),
        (settings.monitoring_topic_name, settings.monitoring_topic_arn),
    ]
    if "chat" in settings.enabled_channels:
        wanted.append((settings.chat_topic_name, settings.chat_topic_arn))
    for name, given in wanted:
        if given:
            topics[name] = given
            report[name] = "given"
            continue
        topics[name], report[name] = _ensure_topic(sns, name, like_arn=dlq_arn)
    report[settings.table_name] = "created" if store.create_table() else "exists"
    resources = Resources(
        queue_url=queue_url,
        dlq_url=dlq_url,
        critical_topic_arn=topics[settings.critical_topic_name],
        monitoring_topic_arn=topics[settings.monitoring_topic_name],
        table_name=settings.table_name,
        chat_topic_arn=topics.get(settings.chat_topic_name),
    )
    if log_bucket and s3 is not None:
        connected = connect_log_bucket(s3, sqs, bucket=log_bucket, queue_url=queue_url)
        checked = report[f"s3://{log_bucket}"]
        report[f"s3://{log_bucket}"] = f"{checked}, {connected}" if checked == "created" else connected
    if events is not None:
        report[f"event bus {settings.eventbridge_bus}"] = ensure_event_bus(events, settings.eventbridge_bus)
    log.info("resources_ready", **report)
    return resources, report


# The id of our entry in the bucket's notification configuration: replaced on a re-run,
# every other entry left as it was.
LOG_NOTIFICATION_ID = "secops-waf-logs"
# WAF's S3 logging writes under AWSLogs/; Firehose prefixes are the operator's choice.
LOG_PREFIX = "AWSLogs/"


# What S3 answers for a bucket that does not exist, and for one these credentials may
# not see (another account's, or no s3:ListBucket on it).
_NO_BUCKET = frozenset({"404", "NoSuchBucket", "NotFound"})
_BUCKET_DENIED = frozenset({"403", "AccessDenied", "Forbidden"})


def check_log_bucket(s3: S3Client, bucket: str, *, create: bool = False) -> str:
    """``exists`` if ``bucket`` is there and ours to configure, ``created`` if it was
    missing and ``create`` made it; else :class:`ResourceError` naming the bucket, with
    nothing changed."""
    try:
        s3.head_bucket(Bucket=bucket)
        return "exists"
    except ClientError as exc:
        code = _code(exc)
        if code in _BUCKET_DENIED:
            raise ResourceError(
                f"the log bucket {bucket!r} is not reachable with these credentials (another "
                "account's bucket, or s3:ListBucket is missing); nothing was changed"
            ) from None
        if code not in _NO_BUCKET:
            raise
    if not create:
        raise ResourceError(
            f"the log bucket {bucket!r} does not exist: create it (WAF logs to buckets named "
            f"aws-waf-logs-*), or run `secops setup --log-bucket {bucket} --create-bucket`; "
            "nothing was changed"
        )
    region = s3.meta.region_name
    if region and region != "us-east-1":
        s3.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": cast("BucketLocationConstraintType", region)},
        )
    else:
        s3.create_bucket(Bucket=bucket)
    log.info("log_bucket_created", bucket=bucket)
    return "created"


def connect_log_bucket(
    s3: S3Client, sqs: SQSClient, *, bucket: str, queue_url: str, prefix: str = LOG_PREFIX
) -> str:
    """Let S3 notify the queue of new log files in ``bucket``. Idempotent.

    The queue policy lets ``s3.amazonaws.com`` send only for this bucket
    (``aws:SourceArn``) and only on behalf of the queue's own account
    (``aws:SourceAccount``), so another account's bucket of the same name cannot. S3
    checks the policy when the notification is saved and sends an ``s3:TestEvent``,
    which the worker acknowledges.
    """
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn", "Policy"])
    attributes = queue_arn["Attributes"]
    arn = attributes["QueueArn"]
    account = arn.split(":")[4]
    statement = {
        "Sid": f"s3-notify-{bucket}"[:100],
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": arn,
        "Condition": {
            "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"},
            "StringEquals": {"aws:SourceAccount": account},
        },
    }
    policy = json.loads(attributes.get("Policy") or '{"Version": "2012-10-17", "Statement": []}')
    policy["Statement"] = [s for s in policy.get("Statement", []) if s.get("Sid") != statement["Sid"]]
    policy["Statement"].append(statement)
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    answer = s3.get_bucket_notification_configuration(Bucket=bucket)
    # The other notifications are put back as read: the stubs type the answer's entries
    # apart from the request's, though they are the same shapes.
    current: dict[str, Any] = {k: v for k, v in answer.items() if k != "ResponseMetadata"}
    queues = [q for q in current.get("QueueConfigurations", []) if q.get("Id") != LOG_NOTIFICATION_ID]
    queues.append(
        {
            "Id": LOG_NOTIFICATION_ID,
            "QueueArn": arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
        }
    )
    current["QueueConfigurations"] = queues
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=cast("NotificationConfigurationTypeDef", current)
    )
    return "notifies the queue"


def ensure_event_bus(events: EventBridgeClient, bus: str) -> str:
    """Create the EventBridge bus ``bus`` unless it exists; say which. Idempotent.

    The account's ``default`` bus always exists, and a bus given by ARN is someone
    else's to create (often another account's), so neither is touched.
    """
    if bus == "default":
        return "default"
    if bus.startswith("arn:"):
        return "given"
    try:
        events.describe_event_bus(Name=bus)
        return "exists"
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
    try:
        events.create_event_bus(Name=bus)
    except ClientError as exc:
        # Another `secops setup` created it between the two calls.
        if _code(exc) != "ResourceAlreadyExistsException":
            raise
        return "exists"
    return "created"


def resolve_resources(
    settings: Settings, *, sqs: SQSClient, sns: SNSClient, dynamodb: DynamoDBClient | None = None
) -> Resources:
    """Find existing resources without creating anything (the daemon's start-up).

    With ``dynamodb``, the table is checked too: a worker without its table would take
    every message and fail on each, until healthy events reached the DLQ.
    """
    queue_url = _source_queue_url(settings, sqs)
    dlq_url = _dlq_url(sqs, queue_url)
    critical = settings.critical_topic_arn or _topic_arn(sns, settings.critical_topic_name)
    monitoring = settings.monitoring_topic_arn or _topic_arn(sns, settings.monitoring_topic_name)
    chat = None
    if "chat" in settings.enabled_channels:
        chat = settings.chat_topic_arn or _topic_arn(sns, settings.chat_topic_name)
    if dynamodb is not None:
        _check_table(dynamodb, settings.table_name)
    return Resources(queue_url, dlq_url, critical, monitoring, settings.table_name, chat_topic_arn=chat)


def _source_queue_url(settings: Settings, sqs: SQSClient) -> str:
    try:
        return settings.queue_url or sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    except ClientError as exc:
        # Anything else (denied, throttled, expired credentials) is explained as itself.
        if _code(exc) not in _NO_QUEUE:
            raise
        raise ResourceError(
            f"queue {settings.queue_name!r} not found ({_code(exc)}): run `secops setup` "
            "or set SECOPS_QUEUE_URL"
        ) from None


def _check_table(dynamodb: DynamoDBClient, name: str) -> None:
    try:
        dynamodb.describe_table(TableName=name)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        raise ResourceError(
            f"table {name!r} not found: run `secops setup` or set SECOPS_TABLE_NAME"
        ) from None


def resolve_queues(settings: Settings, *, sqs: SQSClient) -> tuple[str, str]:
    """The source queue and its DLQ, with SQS alone (``secops dlq`` needs no topics).

    The DLQ is the one the source queue's redrive policy names, since that is where
    SQS actually moves messages; ``SECOPS_DLQ_NAME`` is the fallback when there is no
    policy to read.
    """
    queue_url = _source_queue_url(settings, sqs)
    dlq_url = _dlq_url(sqs, queue_url)
    if dlq_url is None:
        try:
            dlq_url = sqs.get_queue_url(QueueName=settings.dlq_name)["QueueUrl"]
        except ClientError as exc:
            if _code(exc) not in _NO_QUEUE:
                raise
            raise ResourceError(
                f"queue {queue_url} has no redrive policy and DLQ {settings.dlq_name!r} was not "
                f"found ({_code(exc)}): run `secops setup` or set SECOPS_DLQ_NAME"
            ) from None
    return queue_url, dlq_url


def _ensure_queue(
    sqs: SQSClient, name: str, attributes: Mapping[QueueAttributeNameType, str]
) -> tuple[str, str]:
    if name.endswith(".fifo"):
        attributes = {**attributes, "FifoQueue": "true"}
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"], "exists"
    except ClientError as exc:
        if _code(exc) not in _NO_QUEUE:
            raise
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"], "created"


def create_topic(sns: SNSClient, name: str) -> str:
    """Create the topic ``name`` (idempotent) and return its ARN.

    CreateTopic returns the existing ARN for a topic that already exists with the same
    attributes. A name ending in ``.fifo`` is created as a FIFO topic; notifications
    carry explicit deduplication ids, so content-based deduplication stays off.
    """
    attributes = {"FifoTopic": "true"} if name.endswith(".fifo") else {}
    arn: str = sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
    return arn


def _ensure_topic(sns: SNSClient, name: str, *, like_arn: str) -> tuple[str, str]:
    """Create a topic unless it exists; says which, like the queues and the table do.

    CreateTopic alone is idempotent but cannot tell the two apart, so look first at the
    ARN the topic would have (partition and account taken from a queue ARN of ours).
    Without permission to look, create it and report ``ensured``.
    """
    parts = like_arn.split(":")
    if len(parts) >= 6:
        arn = f"arn:{parts[1]}:sns:{sns.meta.region_name}:{parts[4]}:{name}"
        try:
            sns.get_topic_attributes(TopicArn=arn)
            return arn, "exists"
        except ClientError as exc:
            if _code(exc) in {"NotFound", "NotFoundException"}:
                arn = create_topic(sns, name)
        return arn, "created"
    return create_topic(sns, name), "ensured"


def _dlq_url(sqs: SQSClient, queue_url: str) -> str | None:
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    except ClientError:
        return None
    policy = attributes.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        return None
    arn = json.loads(policy).get("deadLetterTargetArn", "")
    # arn:aws:sqs:<region>:<account>:<name>
    parts = arn.split(":")
    if len(parts) < 6:
        return None
    try:
        url: str = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        return url
    except ClientError:
        return None


def _topic_arn(sns: SNSClient, name: str) -> str:
    # CreateTopic is idempotent and returns the ARN of an existing topic; in AWS the
    # task role usually cannot create topics, so deployments set the ARNs instead.
    try:
        return create_topic(sns, name)
    except ClientError as exc:
        raise ResourceError(
            f"topic {name!r} unavailable ({_code(exc)}): set SECOPS_CRITICAL_TOPIC_ARN / "
            "SECOPS_MONITORING_TOPIC_ARN / SECOPS_CHAT_TOPIC_ARN or run `secops setup`"
        ) from None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))
