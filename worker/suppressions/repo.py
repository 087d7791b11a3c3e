"""What every suppression repository answers to, apart from its storage.

The port itself is :class:`worker.ports.SuppressionRepo`; the DynamoDB and in-memory
repositories raise these errors, and one contract test suite runs against both.
"""

from __future__ import annotations


class DuplicateSuppression(Exception):
    """A suppression with this id exists already (ids are random: a retried create)."""

    def __init__(self, suppression_id: str) -> None:
        super().__init__(f"suppression {suppression_id} exists already")
        self.suppression_id = suppression_id


class SuppressionConflict(Exception):
    """Someone changed the suppression between our read and our write: read it again."""

    def __init__(self, suppression_id: str) -> None:
        super().__init__(f"suppression {suppression_id} changed meanwhile; try again")
        self.suppression_id = suppression_id
