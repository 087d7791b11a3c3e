"""Typed facades of the runtime's three logical agents, and the transports under them.

``Agents.from_settings(settings)`` is what the worker uses; the transports
(in-process, HTTP, AgentCore) are interchangeable behind :class:`Transport`, and every
runtime failure is classified in :mod:`worker.agents.transport`.
"""

from worker.agents.facades import (
    Agents,
    IncidentTriagerAgent,
    SecurityAnalystAgent,
    SecurityMonitorAgent,
    build_transport,
)
from worker.agents.transport import (
    SESSION_HEADER,
    RetryPolicy,
    Transport,
    TransportConfigError,
    classify_error_body,
    classify_exception,
    classify_http_status,
    session_id_for,
)

__all__ = [
    "SESSION_HEADER",
    "Agents",
    "IncidentTriagerAgent",
    "RetryPolicy",
    "SecurityAnalystAgent",
    "SecurityMonitorAgent",
    "Transport",
    "TransportConfigError",
    "build_transport",
    "classify_error_body",
    "classify_exception",
    "classify_http_status",
    "session_id_for",
]
