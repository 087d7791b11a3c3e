"""Suppressions: the operator's explicit, scoped, audited, expiring word that some events
are expected (docs/architecture.md, "Suppressions").

- :mod:`.model`: the scope and the suppression, with its audit and expiry;
- :mod:`.matching`: which events a scope covers, and why one is never suppressed;
- :mod:`.cache`: the worker's copy, read again within a minute on every replica;
- :mod:`.memory` and :mod:`.dynamodb`: the repositories (the port is
  :class:`worker.ports.SuppressionRepo`).
"""

from __future__ import annotations

from worker.suppressions.model import Scope, ScopeError, Suppression, SuppressionMatch

__all__ = ["Scope", "ScopeError", "Suppression", "SuppressionMatch"]
