"""One line for an operator's mistake: the embedded demo missing from the worker image."""

from __future__ import annotations

from worker.cli.common import EXIT_USAGE
from worker.cli.errors import explain


def test_the_demo_missing_from_the_worker_image_is_one_clear_line() -> None:
    # GIVEN the import error of `secops demo` in the worker image (worker/embedded left out)
    missing = ModuleNotFoundError("No module named 'worker.embedded'", name="worker.embedded")
    # WHEN the CLI explains it
    explained = explain(missing)
    # THEN it says where the demo runs, as a usage error
    assert explained is not None
    assert "left out of the worker image" in explained.message
    assert explained.code == EXIT_USAGE
