"""``bench/results.json``: one document, a section per scenario, written by several runs.

``make bench`` (the sweep and the flood, :mod:`bench.run`) writes its figures anew; the
``s3`` and ``day`` scenarios (:mod:`bench.s3`, :mod:`bench.day`) each replace their own
section and leave the rest as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = "bench/results.json"
# Sections a sweep or flood run carries over from the file it replaces.
OWN_SCENARIOS = ("s3", "day")


def read_results(path: Path) -> dict[str, Any]:
    """The document at ``path``; empty when it is missing or not a JSON object."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def write_section(path: Path, name: str, section: dict[str, Any]) -> None:
    """Replace the section ``name`` of the document at ``path``, keeping the others."""
    document = read_results(path)
    document[name] = section
    _write(path, document)


def write_run(path: Path, results: dict[str, Any], keep: Iterable[str] = OWN_SCENARIOS) -> None:
    """Write ``results`` as the document, with the ``keep`` sections of the old one."""
    previous = read_results(path)
    _write(path, {**results, **{name: previous[name] for name in keep if name in previous}})


def _write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
