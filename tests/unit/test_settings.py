"""Start-up validation of the settings issue 19 added: clear messages naming the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.consumers.s3_objects import read_limits
from worker.settings import Settings


def test_the_stall_bound_must_exceed_the_event_lease() -> None:
    with pytest.raises(ValidationError, match="SECOPS_HEALTH_MAX_STALL_S=100 must exceed SECOPS_LEASE_S=180"):
        Settings(health_max_stall_s=100)


def test_the_log_bucket_list_may_not_be_empty() -> None:
    with pytest.raises(ValidationError, match="SECOPS_LOG_BUCKETS names no bucket"):
        Settings(log_buckets=" , ")


def test_a_kept_record_must_fit_one_batch() -> None:
    with pytest.raises(ValidationError, match="log_max_record_kib"):
        Settings(log_max_record_kib=1024)


def test_bucket_rules_and_read_limits_come_from_the_settings() -> None:
    settings = Settings(log_buckets="aws-waf-logs-*, firehose-out/waf/", log_max_inflated_mib=10)
    assert settings.log_bucket_rules == (("aws-waf-logs-*", ""), ("firehose-out", "waf/"))
    limits = read_limits(settings)
    assert limits.max_inflated_bytes == 10 * 1024 * 1024 and limits.max_kept_record_bytes == 128 * 1024
