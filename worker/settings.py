"""The worker's settings: one frozen object, built once in ``main`` and passed in.

Every variable has the ``SECOPS_`` prefix (``SECOPS_QUEUE_NAME`` ...); the original
``LOG_LEVEL``, ``AGENT_NAME`` and ``AWS_REGION`` are honoured too. AWS endpoints come
from the standard ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` variables, so
the same build talks to moto, LocalStack or AWS without code changes.
"""

from __future__ import annotations

from typing import Literal, Self, cast

from pydantic import Field, field_validator, model_validator

from secops_core.settings import CommonSettings
from worker.notify.names import CHANNEL_NAMES, ChannelName

TransportName = Literal["inprocess", "http", "agentcore"]
UnavailablePolicy = Literal["wait", "rules"]
IncidentGroupBy = Literal["source", "source_net", "signature"]
LogFilter = Literal["relevant", "matched", "blocked", "all"]
ResponseMode = Literal["off", "dry_run", "on"]
BlockPrefixChoice = Literal["address", "network"]

# AWS limits the settings are checked against at start-up.
SQS_MAX_WAIT_S = 20
# ReceiveMessage and every batch API (send, delete, change visibility): their one home.
SQS_MAX_BATCH = 10
SQS_MAX_VISIBILITY_S = 12 * 3600
SQS_MAX_MESSAGE_BYTES = 1024 * 1024
# The incident channels a deployment may enable: the one list in worker/notify/names.py.
CHANNEL_CHOICES = CHANNEL_NAMES
# The poll loop refreshes the heartbeat around every receive, and one receive can last
# the whole long poll plus a slow answer; the health check's limit must leave room for
# that, or an idle worker reads as dead.
HEALTH_SLACK_S = 10
# One SendMessageBatch carries 256 KiB of bodies and attributes (queues created before
# the 1 MiB raise, and moto's): a kept record leaves room for its message attributes.
LOG_RECORD_MAX_KIB = 250
# AWS WAF holds at most 10,000 addresses in one IP set (worker.response.keys).
WAF_MAX_ADDRESSES = 10_000


class Settings(CommonSettings):
    """Everything the worker process needs, beside the settings both processes share."""

    # --- resources (created by `secops setup`) ---
    queue_name: str = "waf-events"
    dlq_name: str = "waf-events-dlq"
    # A full queue URL wins over the name (cross-account or pre-existing queues).
    queue_url: str | None = None
    table_name: str = "secops-events"
    critical_topic_name: str = "secops-critical"
    monitoring_topic_name: str = "secops-monitoring"
    critical_topic_arn: str | None = None
    monitoring_topic_arn: str | None = None
    # Receives before SQS moves a message to the DLQ (redrive policy set by setup).
    max_receive_count: int = Field(default=5, ge=1, le=1000)
    # SECOPS_LOCALSTACK=1: find LocalStack's edge endpoint (LOCALSTACK_HOST, default
    # localhost:4566) through localstack-client when AWS_ENDPOINT_URL is not set.
    localstack: bool = False

    # --- agent runtime transport ---
    transport: TransportName = "inprocess"
    runtime_url: str = "http://127.0.0.1:8080"
    agent_runtime_arn: str | None = None
    agent_runtime_qualifier: str = "DEFAULT"
    runtime_connect_timeout_s: float = Field(default=3.0, gt=0)
    runtime_read_timeout_s: float = Field(default=60.0, gt=0)
    # Total time spent retrying one runtime call; kept below the message lease.
    runtime_retry_deadline_s: float = Field(default=90.0, gt=0)
    runtime_max_attempts: int = Field(default=4, ge=1, le=20)
    # When the runtime stays unavailable: `wait` opens the circuit and stops pulling;
    # `rules` falls back to the offline rules provider and marks the result degraded.
    on_runtime_unavailable: UnavailablePolicy = "wait"
    circuit_open_s: float = Field(default=30.0, gt=0)
    circuit_failure_threshold: int = Field(default=3, ge=1)

    # --- consumer ---
    concurrency: int = Field(default=16, ge=1, le=256)
    batch_size: int = Field(default=10, ge=1)
    wait_time_s: int = Field(default=20, ge=0)
    visibility_timeout_s: int = Field(default=120, ge=10)
    # How often in-flight messages get their visibility extended.
    heartbeat_interval_s: float = Field(default=30.0, gt=0)
    # Below ECS's default stopTimeout (30 s) so the task exits before SIGKILL.
    drain_timeout_s: float = Field(default=25.0, ge=0)
    # Retry delay after a retryable failure: base * 2^(receive_count-1), capped.
    retry_base_delay_s: int = Field(default=10, ge=0)
    retry_max_delay_s: int = Field(default=600, ge=0)
    # Exit after the queue has been empty this many polls in a row (0 = never; demo/bench).
    exit_when_idle_polls: int = Field(default=0, ge=0)

    # --- WAF log files from S3 (S3 notifications on the events queue) ---
    # Which log records become events: `relevant` (the catalog decides; relevant records
    # that cannot page are counted per window, not stored), `matched` (a rule matched or
    # acted, or any label), `blocked` (BLOCK, CAPTCHA, CHALLENGE) or `all`.
    log_filter: LogFilter = "relevant"
    # How often a log file's checkpoint is saved while it is read (also how soon a stop
    # is honoured mid-file): far below the drain timeout.
    log_checkpoint_s: float = Field(default=5.0, gt=0, le=20)
    # Bounds one log object cannot exceed, whatever it holds (docs/architecture.md,
    # "Consumers"). Inflated bytes: a 128 MiB Firehose object of WAF JSON inflates to
    # about 1.3 GiB. Ratio: WAF JSON compresses 10-40 times; a gzip bomb about 1000.
    log_max_inflated_mib: int = Field(default=4096, ge=1)
    log_max_inflation_ratio: float = Field(default=200.0, gt=1)
    # Reading time per object, over every attempt (a 1.3 GiB object reads in about 10 s).
    log_max_read_s: float = Field(default=900.0, gt=0)
    # Records kept per object and per CloudWatch envelope (PutLogEvents takes 10,000 log
    # events at most); the rest are counted as capped, not sent. Identical records of one
    # object are counted as duplicates, not sent again.
    log_max_kept_per_object: int = Field(default=50_000, ge=1)
    log_max_kept_per_envelope: int = Field(default=10_000, ge=1)
    # The largest record sent to the queue; a larger one is a bad line with its reason.
    # A WAF record is a few KiB; one SendMessageBatch carries 256 KiB.
    log_max_record_kib: int = Field(default=128, ge=1, le=LOG_RECORD_MAX_KIB)
    # The buckets (and key prefixes) the worker may read, comma-separated: `NAME`,
    # `NAME/PREFIX`, `*` as a wildcard in a name. A notification of any other object is
    # rejected. WAF's own S3 logging writes only to buckets named `aws-waf-logs-*`.
    log_buckets: str = "aws-waf-logs-*"

    # --- store ---
    # A claim on an event is a lease; a consumer that died frees the event after it.
    lease_s: int = Field(default=180, ge=10)
    event_ttl_days: int = Field(default=30, ge=1)

    # --- notifications ---
    # Publish attempts per notification and per channel (transient failures only).
    notify_max_attempts: int = Field(default=5, ge=1, le=20)
    # Where incident milestones go, comma-separated, in this order: `sns` (text on the
    # critical topic), `chat` (a card for Amazon Q Developer in chat applications),
    # `securityhub`, `eventbridge`. Escalations and patterns stay on SNS.
    channels: str = "sns"
    # The topic the chat channel publishes to; Amazon Q Developer subscribes to it.
    chat_topic_name: str = "secops-chat"
    chat_topic_arn: str | None = None
    # The Security Hub channel: the product findings are imported to (default: the
    # account's default product for custom integrations) and the region they are
    # imported in (default: the worker's).
    securityhub_product_arn: str | None = None
    securityhub_region: str | None = None
    # The EventBridge channel's bus: a name (`default` is the account's default bus, which
    # setup never creates) or the ARN of a bus, possibly in another account. PutEvents
    # takes a name of `[.\-_A-Za-z0-9]` (no `/`: that is a partner bus, which takes no
    # events from us) or an ARN.
    eventbridge_bus: str = Field(
        default="secops-incidents",
        pattern=r"^(arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/)?[.\-_A-Za-z0-9]{1,256}$",
    )

    # --- health ---
    health_file: str = "/tmp/secops-worker.health"  # noqa: S108 - per-container file
    health_max_age_s: float = Field(default=90.0, gt=0)
    # A slot holding one message this long without progress (a log file's read that
    # stopped advancing, an event stuck in a call) makes the worker unhealthy. Above the
    # event lease: an event may hold its slot that long.
    health_max_stall_s: float = Field(default=600.0, gt=0)

    # --- monitor job ---
    monitor_enabled: bool = True
    monitor_interval_s: int = Field(default=900, ge=10)
    monitor_hours: int = Field(default=24, ge=1, le=168)
    # A pattern is notified again only after it has grown by this factor.
    monitor_growth_factor: float = Field(default=2.0, gt=1.0)
    monitor_chunk_size: int = Field(default=1000, ge=1, le=5000)

    # --- incidents ---
    # What makes escalated events one incident: `source` (IP + attack class),
    # `source_net` (its /24 or /64 + attack class) or `signature` (attack class + host
    # and URI template, across sources: a distributed attack).
    incident_group_by: IncidentGroupBy = "source"
    # An incident closes after this long without a new event; the next one opens another.
    incident_quiet_s: int = Field(default=3600, ge=60)
    # Counts that notify again: factor, factor², ... (10: at 10, 100, 1000 events).
    incident_growth_factor: float = Field(default=10.0, gt=1.0)
    # A milestone claimed this long ago and never notified was left by a dead worker:
    # the incident's next event sends it. Above the notifier's publish retry budget.
    incident_claim_stale_s: float = Field(default=300.0, ge=10)
    # Group commit: events folding into an open incident within this window share one
    # write. The join that opens an incident (the first page) does not wait for it.
    incident_join_window_s: float = Field(default=0.5, ge=0, le=5)
    incident_join_max_batch: int = Field(default=100, ge=1, le=1000)

    # --- suppressions (docs/architecture.md, "Suppressions") ---
    # Each replica reads the operators' suppressions again this often: a new, expired
    # or removed one applies everywhere within it (a minute at most).
    suppression_refresh_s: float = Field(default=30.0, gt=0, le=60)

    # --- model economy ---
    # Events of one analysis signature (rules, labels, class, blocked/reached, method,
    # URI template) reuse the model's analysis of the first for this long.
    reuse_enabled: bool = True
    reuse_window_s: int = Field(default=900, ge=1)
    # Nothing matched and the floor is 0: the rules decide, no model is asked.
    skip_model_unmatched: bool = True
    # Blocked for who sent it, its rate or its size only (reputation, bot, volume
    # findings, floor <= 2): the rules decide, no model is asked.
    skip_model_blocked_noise: bool = True
    # A floor of 5 (the most a severity can be): no answer can change the decision.
    skip_model_max_floor: bool = True

    # --- response actions (docs/architecture.md, "Response actions") ---
    # `off` (default): nothing is ever blocked automatically; `dry_run`: the decision is
    # taken, logged and shown, nothing is written; `on`: the source goes into the IP set.
    response_mode: ResponseMode = "off"
    # The WAF IP sets blocks are written to, by ARN (`secops setup --ip-set NAME` prints
    # them); IPv4 and IPv6 sets are separate in WAF. A missing one blocks no such address.
    response_ip_set_v4: str | None = None
    response_ip_set_v6: str | None = None
    # CIDRs never blocked, comma-separated; private, loopback, link-local and the
    # documentation ranges are always in it unless released in the next setting.
    response_allowlist: str = ""
    # Reserved ranges that MAY be blocked: any of private, loopback, link_local,
    # documentation (the demo releases documentation, where its samples live).
    response_blockable_ranges: str = ""
    # `address` blocks the source itself; `network` its /24 (IPv4) or /64 (IPv6).
    response_block_prefix: BlockPrefixChoice = "address"
    # Which incidents block: severity (reaching the application, unless turned off),
    # or at least this many events (0 = off), or this rate per minute (0 = off).
    response_min_severity: int = Field(default=4, ge=1, le=5)
    response_reached_app_only: bool = True
    response_min_events: int = Field(default=0, ge=0)
    response_min_rate_per_min: float = Field(default=0.0, ge=0)
    # The block period, and how it grows for a network blocked again within the window.
    response_duration_s: int = Field(default=14400, ge=10)
    response_repeat_window_s: int = Field(default=86400, ge=0)
    response_repeat_factor: float = Field(default=2.0, ge=1.0)
    response_max_duration_s: int = Field(default=604800, ge=10)
    # Guards: blocks opened per clock hour, and blocks in force at once (all sets).
    response_max_per_hour: int = Field(default=50, ge=1)
    response_max_total: int = Field(default=1000, ge=1)
    # How often the expiry pass runs (once per slot across replicas): a block outlives
    # its expiry by at most this plus the IP set write's retry budget.
    response_expiry_interval_s: int = Field(default=60, ge=10, le=3600)

    # --- metrics ---
    metrics_enabled: bool = True
    metrics_namespace: str = "SecOpsWorker"

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: str) -> str:
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in CHANNEL_CHOICES]
        if unknown:
            raise ValueError(
                f"unknown channel(s) {', '.join(unknown)}: choose from {', '.join(CHANNEL_CHOICES)}"
            )
        if not names:
            raise ValueError("at least one channel must be enabled (e.g. sns)")
        return ",".join(dict.fromkeys(names))

    @property
    def enabled_channels(self) -> tuple[ChannelName, ...]:
        """The channels of ``SECOPS_CHANNELS``, in order, each once (validated names)."""
        return cast(tuple[ChannelName, ...], tuple(self.channels.split(",")))

    @property
    def log_bucket_rules(self) -> tuple[tuple[str, str], ...]:
        """``SECOPS_LOG_BUCKETS`` as (bucket pattern, key prefix) pairs."""
        rules = []
        for entry in self.log_buckets.split(","):
            bucket, _, prefix = entry.strip().partition("/")
            if bucket:
                rules.append((bucket, prefix))
        return tuple(rules)

    def _response_problems(self) -> list[str]:
        from worker.response.config import response_problems

        return response_problems(self)

    @model_validator(mode="after")
    def _check_aws_limits(self) -> Self:
        problems = []
        if self.wait_time_s > SQS_MAX_WAIT_S:
            problems.append(
                f"SECOPS_WAIT_TIME_S={self.wait_time_s}: SQS long polling is at most {SQS_MAX_WAIT_S} s"
            )
        if self.batch_size > SQS_MAX_BATCH:
            problems.append(
                f"SECOPS_BATCH_SIZE={self.batch_size}: SQS receives at most {SQS_MAX_BATCH} messages"
            )
        if self.visibility_timeout_s > SQS_MAX_VISIBILITY_S:
            problems.append(
                f"SECOPS_VISIBILITY_TIMEOUT_S={self.visibility_timeout_s}: "
                f"SQS allows at most {SQS_MAX_VISIBILITY_S} s"
            )
        if self.heartbeat_interval_s >= self.visibility_timeout_s:
            problems.append(
                f"SECOPS_HEARTBEAT_INTERVAL_S={self.heartbeat_interval_s} must be below "
                f"SECOPS_VISIBILITY_TIMEOUT_S={self.visibility_timeout_s}, or messages reappear mid-work"
            )
        if self.retry_max_delay_s > SQS_MAX_VISIBILITY_S:
            problems.append(f"SECOPS_RETRY_MAX_DELAY_S must be at most {SQS_MAX_VISIBILITY_S} s")
        if self.runtime_retry_deadline_s >= self.lease_s:
            problems.append(
                f"SECOPS_RUNTIME_RETRY_DEADLINE_S={self.runtime_retry_deadline_s} must be below "
                f"SECOPS_LEASE_S={self.lease_s}: a retrying call must not outlive its claim"
            )
        if self.health_max_age_s <= self.wait_time_s + HEALTH_SLACK_S:
            problems.append(
                f"SECOPS_HEALTH_MAX_AGE_S={self.health_max_age_s:g} must exceed SECOPS_WAIT_TIME_S="
                f"{self.wait_time_s} + {HEALTH_SLACK_S} s: a long poll is that long without a heartbeat"
            )
        if self.health_max_stall_s <= max(self.lease_s, self.log_checkpoint_s):
            problems.append(
                f"SECOPS_HEALTH_MAX_STALL_S={self.health_max_stall_s:g} must exceed SECOPS_LEASE_S="
                f"{self.lease_s}: an event may hold its slot that long"
            )
        if not self.log_bucket_rules:
            problems.append("SECOPS_LOG_BUCKETS names no bucket: list at least one, e.g. aws-waf-logs-*")
        problems.extend(self._response_problems())
        if self.transport == "agentcore" and not self.agent_runtime_arn:
            problems.append("SECOPS_TRANSPORT=agentcore needs SECOPS_AGENT_RUNTIME_ARN")
        if problems:
            raise ValueError("; ".join(problems))
        return self
