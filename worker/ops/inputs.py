"""Readers for the CLI's inputs: JSON lines, or one JSON array, from a file or stdin."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# A line longer than SQS's message limit cannot be an event we would accept anyway.
MAX_LINE_BYTES = 1024 * 1024


class InputError(Exception):
    """The input file itself cannot be read (missing, a directory, not text)."""


@dataclass(frozen=True)
class InputRecord:
    """One record: its 1-based line number, its text, and the parsed value or the error."""

    line: int
    text: str
    value: Any = None
    error: str | None = None
    # Longer than any message SQS takes; ``text`` then holds only its start.
    oversize: bool = False


def open_input(path: str) -> IO[str]:
    """``-`` is stdin; anything else must be a readable text file."""
    if path == "-":
        return sys.stdin
    target = Path(path)
    if not target.exists():
        raise InputError(f"{path}: no such file")
    if target.is_dir():
        raise InputError(f"{path}: is a directory, expected a JSON lines file")
    try:
        # utf-8-sig: Windows tools (Notepad, PowerShell 5's Out-File) start UTF-8 files
        # with a byte order mark, which json.loads refuses on the first record.
        return target.open(encoding="utf-8-sig", errors="strict")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None


def read_records(stream: IO[str]) -> Iterator[InputRecord]:
    """Yield records from JSON lines; a file that is one JSON array yields its items.

    Blank lines and lines starting with ``#`` are skipped. A line that is not JSON is
    yielded with ``error`` set, so callers report it and go on with the rest.
    """
    try:
        text = stream.read()
    except UnicodeDecodeError as exc:
        raise InputError(f"{_label(stream)}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        # stdin decodes with surrogateescape under a C/POSIX locale, so bad bytes arrive
        # as lone surrogates instead of an error; refuse them the same way.
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        offset = len(text[: exc.start].encode("utf-8", "surrogateescape"))
        raise InputError(f"{_label(stream)}: not UTF-8 text (invalid byte at byte {offset})") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except (ValueError, RecursionError):
            items = None
        if isinstance(items, list):
            for index, item in enumerate(items, start=1):
                yield InputRecord(line=index, text=json.dumps(item), value=item)
            return
    # Only "\n" ends a JSON line (files and stdin are read with universal newlines, so
    # "\r\n" and "\r" arrive as "\n"). str.splitlines() also splits on U+2028, U+2029,
    # NEL and \x1c-\x1e, which JSON allows raw inside strings: a record whose user
    # agent held one was cut in two broken halves.
    for number, line in enumerate(text.split("\n"), start=1):
        body = line.strip()
        if not body or body.startswith("#"):
            continue
        if len(body.encode("utf-8")) > MAX_LINE_BYTES:
            yield InputRecord(
                line=number, text=body[:200], error=f"line exceeds {MAX_LINE_BYTES} bytes", oversize=True
            )
            continue
        try:
            yield InputRecord(line=number, text=body, value=json.loads(body))
        except json.JSONDecodeError as exc:
            yield InputRecord(line=number, text=body, error=f"not JSON: {exc.msg} at column {exc.colno}")
        except RecursionError:
            yield InputRecord(line=number, text=body, error="not JSON: nested too deeply")
        except ValueError as exc:
            # e.g. an integer literal longer than sys.get_int_max_str_digits() (4300)
            yield InputRecord(line=number, text=body, error=f"not acceptable JSON: {str(exc)[:120]}")


def _label(stream: IO[str]) -> str:
    """How an error names the input: its path, or ``stdin``."""
    name = getattr(stream, "name", None)
    return "stdin" if not isinstance(name, str) or name == "<stdin>" else name
