"""The in-process transport: the runtime's service called directly (embedded default)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only for the annotation: the worker imports the runtime's service only when the
    # in-process transport is configured.
    from agent_runtime.service import AgentService


class InProcessTransport:
    """Calls :meth:`AgentService.invoke` in this process.

    The request goes in as the JSON bytes the wire would carry and the answer comes back
    through ``json.dumps``/``loads``, so payload limits, datetimes and every other
    serialization detail behave exactly as over HTTP or AgentCore. Switching the
    embedded default to a real transport then cannot change what the worker sees.
    """

    def __init__(self, service: AgentService) -> None:
        self.service = service

    def invoke(self, payload: dict[str, Any], *, session_id: str | None = None) -> dict[str, Any]:
        """Run the request through the service; ``session_id`` has no meaning here."""
        del session_id  # one process, no sessions
        body = self.service.invoke(json.dumps(payload).encode("utf-8"))
        return json.loads(json.dumps(body))

    def close(self) -> None:
        """Nothing to release: the service holds no connections of ours."""
