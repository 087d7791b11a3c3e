"""Settings both processes share (``SECOPS_`` prefix).

Each process has one frozen settings object that extends ``CommonSettings``, so the
same variable means the same thing in the worker and in the agent runtime.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from secops_core.waf.operator import load_operator_catalog

ProviderName = Literal["bedrock", "rules", "openai", "ollama"]
LogFormat = Literal["auto", "json", "console"]


# The provider defaults, one home for both the settings and agent_runtime.providers.
DEFAULT_MODEL_ID = "amazon.nova-lite-v1:0"  # Nova Lite on Bedrock
# Triage must be repeatable; 1.0 is the top of Bedrock's range for Nova.
MAX_MODEL_TEMPERATURE = 1.0


class CommonSettings(BaseSettings):
    """What both processes read the same way: logging, region and the model provider.

    The worker needs the provider settings too: the embedded default runs the runtime
    in-process, and the fail-safe names the provider in its records.
    """

    model_config = SettingsConfigDict(
        env_prefix="SECOPS_", frozen=True, extra="ignore", populate_by_name=True
    )

    # The original agent read LOG_LEVEL, AGENT_NAME and AWS_REGION: both spellings work.
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("SECOPS_LOG_LEVEL", "LOG_LEVEL"))
    log_format: LogFormat = "auto"
    agent_name: str = Field(
        default="secops-agent",
        validation_alias=AliasChoices("SECOPS_AGENT_NAME", "AGENT_NAME"),
    )
    aws_region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SECOPS_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )

    # Model provider of the security analyst. `rules` needs no model and no network.
    provider: ProviderName = "rules"
    model_id: str = DEFAULT_MODEL_ID
    model_base_url: str | None = None
    model_api_key: SecretStr | None = None
    model_temperature: float = Field(default=0.0, ge=0.0, le=MAX_MODEL_TEMPERATURE)
    model_max_tokens: int = Field(default=1024, ge=64, le=8192)
    model_connect_timeout_s: float = Field(default=5.0, gt=0)
    model_read_timeout_s: float = Field(default=60.0, gt=0)
    # Model requests per event, all retries and structured-output turns included; the
    # runtime's default per analyze request and the worker's budget across deliveries.
    model_call_budget: int = Field(
        default=3,
        ge=1,
        le=20,
        validation_alias=AliasChoices("SECOPS_MODEL_CALL_BUDGET", "SECOPS_MODEL_MAX_ATTEMPTS"),
    )

    # Events per pattern that make the monitor escalate (the seed used 5).
    monitor_threshold: int = Field(default=5, ge=1)

    # The operator's own rules catalog (README "Your own rules"). Validated here, when
    # each process builds its settings, so a bad file stops start-up with one line; the
    # floor then reads the same file from the same variable, once (waf/operator.py).
    rules_catalog: str | None = None

    @field_validator("rules_catalog")
    @classmethod
    def _valid_rules_catalog(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        load_operator_catalog(value.strip())
        return value.strip()
