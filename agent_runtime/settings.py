"""Settings of the agent runtime process (``SECOPS_`` prefix)."""

from __future__ import annotations

from pydantic import Field

from secops_core.settings import CommonSettings


class RuntimeSettings(CommonSettings):
    """What the agent runtime needs beyond the shared settings: where to serve."""

    # Where `python -m agent_runtime` serves (AgentCore expects 0.0.0.0:8080).
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
