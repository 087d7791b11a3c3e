"""The in-process transport: the runtime's service called directly (embedded default)."""

from __future__ import annotations

import json
from typing import Any

# The one place the worker loads the runtime (docs/architecture.md, "Packages"): the
# embedded default and `secops analyze` run it in this process. The worker image does
# not ship agent_runtime, and nothing else in worker/ imports this module eagerly.
from agent_runtime.service import AgentService, build_service
from secops_core.settings import CommonSettings


class InProcessTransport:
    """Calls :meth:`AgentService.invoke` in this process.

    The request goes in as the JSON bytes the wire would carry and the answer comes back
    through ``json.dumps``/``loads``, so payload limits, datetimes and every other
    serialization detail behave exactly as over HTTP or AgentCore. Switching the
    embedded default to a real transport then cannot change what the worker sees.
    """

    def __init__(self, service: AgentService) -> None:
        self.service = service

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> InProcessTransport:
        """A runtime built from the worker's own provider settings."""
        return cls(build_service(settings))

    def invoke(self, payload: dict[str, Any], *, session_id: str | None = None) -> dict[str, Any]:
        """Run the request through the service; ``session_id`` has no meaning here."""
        del session_id  # one process, no sessions
        body = self.service.invoke(json.dumps(payload).encode("utf-8"))
        echoed: dict[str, Any] = json.loads(json.dumps(body))
        return echoed

    def close(self) -> None:
        """Nothing to release: the service holds no connections of ours."""
