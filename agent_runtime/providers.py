"""Model providers for the security analyst: configuration and construction.

``rules`` needs no model at all. ``bedrock`` is the default (Amazon Nova Lite through
the Converse API). ``openai`` talks to any OpenAI-compatible ``/v1`` endpoint (OpenAI,
vLLM, llama.cpp, LM Studio, a LiteLLM proxy); ``ollama`` is the same client pointed at
Ollama's OpenAI-compatible endpoint, so the ``ollama`` package is not needed.

Strands and the model SDKs are imported inside ``build_model`` only: importing Strands
takes more than a second, and the rules provider and the wire contract never need it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from secops_core.contract import MAX_MODEL_BUDGET
from secops_core.settings import DEFAULT_MODEL_ID, MAX_MODEL_TEMPERATURE, CommonSettings, ProviderName

if TYPE_CHECKING:
    from strands.models import Model


DEFAULT_BEDROCK_MODEL_ID = DEFAULT_MODEL_ID
DEFAULT_CALL_BUDGET = 3
DEFAULT_REGION = "us-east-1"
DEFAULT_OLLAMA_BASE_URL = "http://localhost:11434/v1"
# Local OpenAI-compatible servers ignore the key, but the OpenAI client refuses to start
# without one.
_PLACEHOLDER_API_KEY = "not-needed"


class ProviderConfig(BaseModel):
    """How the security analyst reaches its model. Frozen: built once at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: ProviderName = "bedrock"
    model_id: str = DEFAULT_BEDROCK_MODEL_ID
    # Bedrock region; defaults to AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1.
    region: str | None = None
    # Bedrock: a custom endpoint (VPC endpoint, test server). openai/ollama: the ``/v1`` URL.
    base_url: str | None = None
    # Bedrock: an Amazon Bedrock API key instead of SigV4. openai: the API key (falls back
    # to OPENAI_API_KEY). ollama: ignored by the server.
    api_key: SecretStr | None = None
    # Triage must be repeatable: the same event should get the same assessment.
    temperature: float = Field(default=0.0, ge=0.0, le=MAX_MODEL_TEMPERATURE)
    # Four short fields fit comfortably; a cap keeps a runaway answer cheap.
    max_tokens: int = Field(default=1024, ge=64, le=8192)
    connect_timeout: float = Field(default=5.0, gt=0)
    # Nova Lite answers in a few seconds; a minute covers a slow local model on CPU.
    read_timeout: float = Field(default=60.0, gt=0)
    # Model requests per event (retries and structured-output turns included). The SDK
    # clients make one attempt per request: the analyst's loop is the one retry policy.
    call_budget: int = Field(default=DEFAULT_CALL_BUDGET, ge=1, le=MAX_MODEL_BUDGET)
    # Off, and not a setting: only the complete tool input is usable, so streaming cannot
    # bring the answer sooner, and a trickling stream would escape the read timeout
    # (README, "Providers"). Kept for the wire tests of both protocols.
    streaming: bool = False

    @model_validator(mode="after")
    def _model_id_fits_provider(self) -> Self:
        # The default id names a Bedrock model; another server would only reject it on the
        # first event, with a less helpful message than this one at start-up.
        if self.provider in ("openai", "ollama") and self.model_id == DEFAULT_BEDROCK_MODEL_ID:
            raise ValueError(
                f"set model_id for provider {self.provider!r} (e.g. 'llama3.1:8b' for ollama); "
                f"{DEFAULT_BEDROCK_MODEL_ID} is a Bedrock model id"
            )
        return self

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> ProviderConfig:
        """The provider configuration the process settings describe."""
        return cls(
            provider=settings.provider,
            model_id=settings.model_id,
            region=settings.aws_region,
            base_url=settings.model_base_url,
            api_key=settings.model_api_key,
            temperature=settings.model_temperature,
            max_tokens=settings.model_max_tokens,
            connect_timeout=settings.model_connect_timeout_s,
            read_timeout=settings.model_read_timeout_s,
            call_budget=settings.model_call_budget,
        )

    def resolved_region(self) -> str:
        """The Bedrock region this configuration uses."""
        return (
            self.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION
        )


def build_model(config: ProviderConfig) -> Model | None:
    """Build the Strands model for ``config``; None for the ``rules`` provider.

    To use a ready model instead (a test double, a provider configured by hand), pass it
    to ``SecurityAnalyst`` directly; this function is only the configuration path.
    """
    if config.provider == "rules":
        return None
    if config.provider == "bedrock":
        return _bedrock_model(config)
    return _openai_compatible_model(config)


def _bedrock_model(config: ProviderConfig) -> Model:
    from botocore.config import Config as BotocoreConfig
    from strands.models.bedrock import BedrockModel

    client_config = BotocoreConfig(
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        # One attempt per request: the analyst retries within the event's budget and
        # counts every request. ``total_max_attempts`` counts the first call; botocore's
        # ``max_attempts`` would count retries only, one more call than configured.
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    return BedrockModel(
        model_id=config.model_id,
        region_name=config.resolved_region(),
        endpoint_url=config.base_url,
        api_key=config.api_key.get_secret_value() if config.api_key else None,
        boto_client_config=client_config,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        streaming=config.streaming,
    )


def _openai_compatible_model(config: ProviderConfig) -> Model:
    try:
        import httpx
        from strands.models.openai import OpenAIModel
    except ImportError as exc:
        raise RuntimeError(
            f"provider {config.provider!r} needs the openai extra: pip install 'secops-worker[openai]'"
        ) from exc

    base_url: str | None
    if config.provider == "ollama":
        base_url = config.base_url or DEFAULT_OLLAMA_BASE_URL
        api_key = config.api_key.get_secret_value() if config.api_key else "ollama"
    else:
        base_url = config.base_url
        api_key = (
            config.api_key.get_secret_value()
            if config.api_key
            else os.environ.get("OPENAI_API_KEY", _PLACEHOLDER_API_KEY)
        )
    client_args = {
        "base_url": base_url,
        "api_key": api_key,
        "timeout": httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
        # One attempt per request: the analyst retries within the event's budget.
        "max_retries": 0,
    }
    return OpenAIModel(
        client_args=client_args,
        model_id=config.model_id,
        params={"temperature": config.temperature, "max_tokens": config.max_tokens},
        stream=config.streaming,
    )


def model_id_of(model: Model) -> str:
    """The model id a Strands model reports, for ``Analysis.analyzed_by``."""
    config = model.get_config()
    model_id = config.get("model_id") if isinstance(config, dict) else None
    return str(model_id) if model_id else type(model).__name__
