"""WAF log objects as AWS writes them to S3, read as a stream with bounded memory.

Shapes (docs/architecture.md, "Consumers"):
- gzip or plain (told apart by the gzip magic number, never by the key's suffix);
  concatenated gzip members (Firehose, CloudWatch Logs) read as one stream;
- newline-delimited JSON, as WAF's own S3 logging writes it;
- JSON objects concatenated with no separator (``…}{…``), as Firehose writes them without
  a newline processor;
- CloudWatch Logs subscription envelopes (``DATA_MESSAGE`` whose ``logEvents[].message``
  holds the WAF record; ``CONTROL_MESSAGE`` ignored), as CloudWatch → Firehose → S3 writes.

Most of a real log is default-action ALLOW with nothing matched. The ``keep`` mode decides
what becomes an event: ``matched`` (a rule acted or matched, the default), ``blocked``
(BLOCK, CAPTCHA, CHALLENGE) or ``all``. A line that is certainly default-allow noise is
counted and skipped on its bytes, before the JSON parse (:func:`certainly_noise`).

Nothing here stops on bad input: a line that is not JSON, not a WAF record or too large
is counted with its line number, and a corrupt or truncated gzip stream ends the read with
one bad line, the records before it kept. Only I/O errors of the stream itself propagate.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from secops_core.waf.actions import INTERRUPTING_ACTIONS
from secops_core.waf.names import DEFAULT_ACTION_RULE

KeepMode = Literal["matched", "blocked", "all"]
KEEP_MODES: tuple[KeepMode, ...] = ("matched", "blocked", "all")
Loads = Callable[[bytes | str], Any]

# One readline reads at most this much; a longer line (concatenated records) is framed
# in pieces of this size, so memory never holds more than one piece plus one record.
READ_CHUNK_BYTES = 1024 * 1024
# A CloudWatch Logs envelope carries up to about 1 MB of log events (PutLogEvents' batch);
# a WAF record is a few KiB. Anything beyond this is not a record and is skipped.
MAX_RECORD_BYTES = 4 * 1024 * 1024
# The object's record keeps the first bad lines; the count covers all of them.
MAX_BAD_LINES_KEPT = 100
# The reader hands control back at least this often (in frames) even when it keeps nothing,
# so a caller can checkpoint, heartbeat and honour a stop inside a long run of noise.
TICK_FRAMES = 2000

_GZIP_MAGIC = b"\x1f\x8b"
# Compressed bytes read at a time; decompressed output is bounded by the reader's buffer.
_GZIP_READ_BYTES = 64 * 1024
_SPLIT = b"}{"

# A record is certainly default-allow noise when its bytes hold the default action's
# ALLOW and no trace of any rule. Each "present" pattern is compact JSON (as WAF writes it)
# and each "absent" one a bare key, so other spacing only means a full parse, never a
# wrong skip. Quotes inside a JSON string are escaped, so request data (URI, headers, args)
# cannot forge any of these patterns.
_DEFAULT_RULE = b'"terminatingRuleId":"' + DEFAULT_ACTION_RULE.encode() + b'"'
_ALLOW = b'"action":"ALLOW"'
_RULE_ID = b'"ruleId"'
_RATE_NAME = b'"rateBasedRuleName"'
_RATE_ID = b'"rateBasedRuleId"'
_LABELS = b'"labels"'
_STR_PATTERNS = tuple(p.decode() for p in (_DEFAULT_RULE, _ALLOW, _RULE_ID, _RATE_NAME, _RATE_ID, _LABELS))


def certainly_noise(raw: bytes | str) -> bool:
    """True only for a default-action ALLOW record with no rule, rate rule or label in it."""
    if isinstance(raw, bytes):
        # Spelled out rather than looped: this runs on every line of every log object.
        return (
            _DEFAULT_RULE in raw
            and _ALLOW in raw
            and _RULE_ID not in raw
            and _RATE_NAME not in raw
            and _RATE_ID not in raw
            and _LABELS not in raw
        )
    default_rule, allow, *absent = _STR_PATTERNS
    return default_rule in raw and allow in raw and not any(p in raw for p in absent)


def is_waf_record(record: Any) -> bool:
    return isinstance(record, dict) and isinstance(record.get("httpRequest"), dict)


def keep_record(record: dict[str, Any], mode: KeepMode) -> bool:
    """Whether a parsed WAF record becomes an event under ``mode``."""
    if mode == "all":
        return True
    action = str(record.get("action") or "").upper()
    if mode == "blocked":
        return action in INTERRUPTING_ACTIONS
    if action in INTERRUPTING_ACTIONS:
        return True
    if record.get("terminatingRuleId") not in (None, "", DEFAULT_ACTION_RULE):
        return True
    if record.get("nonTerminatingMatchingRules") or record.get("rateBasedRuleList") or record.get("labels"):
        return True
    for group in record.get("ruleGroupList") or ():
        if isinstance(group, dict) and (
            group.get("terminatingRule")
            or group.get("nonTerminatingMatchingRules")
            or group.get("excludedRules")
        ):
            return True
    return False


@dataclass(frozen=True)
class KeptRecord:
    """A record to turn into an event: its JSON text exactly as the log holds it."""

    line: int
    body: str


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


@dataclass
class ReadCounts:
    """Records read (a CloudWatch envelope counts its log events), kept, skipped, bad."""

    read: int = 0
    kept: int = 0
    skipped: int = 0
    bad: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)

    def add(self, other: ReadCounts) -> None:
        self.read += other.read
        self.kept += other.kept
        self.skipped += other.skipped
        self.bad += other.bad
        room = MAX_BAD_LINES_KEPT - len(self.bad_lines)
        if room > 0:
            self.bad_lines.extend(other.bad_lines[:room])

    def note_bad(self, line: int, reason: str) -> None:
        self.bad += 1
        if len(self.bad_lines) < MAX_BAD_LINES_KEPT:
            self.bad_lines.append(BadLine(line, reason))


class _BodyReader(io.RawIOBase):
    """Any object with ``read(n)`` (botocore's StreamingBody) as a raw stream to buffer."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        return size


class _Gunzip(io.RawIOBase):
    """Streaming gunzip of one or more concatenated members, output bounded per call.

    Unlike ``gzip.GzipFile`` under a buffer, a truncated stream hands out every byte it
    decompressed before the cut and only then raises ``EOFError``, so each whole line
    before the cut is read.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._member = zlib.decompressobj(wbits=31)
        self._in_member = False
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._out:
            self._out = self._fill(len(buffer))
        size = min(len(buffer), len(self._out))
        buffer[:size] = self._out[:size]
        self._out = self._out[size:]
        return size

    def _fill(self, limit: int) -> bytes:
        while True:
            member = self._member
            # ``eof`` first: when a member ends inside a size-limited call, the bytes after
            # it sit in ``unused_data`` and also stay in ``unconsumed_tail``; feeding the tail
            # back to the finished member returns nothing, forever.
            if member.eof:
                # The next member, if any (Firehose and CloudWatch concatenate them).
                data = member.unused_data or self._raw.read(_GZIP_READ_BYTES)
                if not data:
                    return b""
                self._member = member = zlib.decompressobj(wbits=31)
            elif member.unconsumed_tail:
                data = member.unconsumed_tail
            else:
                data = self._raw.read(_GZIP_READ_BYTES)
                if not data:
                    if self._in_member:
                        raise EOFError("compressed stream ended before the end-of-stream marker")
                    return b""
            self._in_member = True
            out = member.decompress(data, limit)
            if member.eof:
                self._in_member = False
            if out:
                return out


def open_log_stream(body: Any) -> IO[bytes]:
    """A buffered, decompressed view of ``body``: gunzipped if it starts with gzip's magic."""
    buffered = io.BufferedReader(_BodyReader(body), buffer_size=_GZIP_READ_BYTES)
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        return io.BufferedReader(_Gunzip(buffered), buffer_size=256 * 1024)
    return buffered


class LogObjectReader:
    """Iterates the records to keep in one log object; counts everything else.

    A *frame* is one record's bytes in the object: a line, or one object of a ``}{`` run
    (a CloudWatch envelope is one frame of many records). Iteration yields the kept
    records of one frame at a time, or an empty list every ``TICK_FRAMES`` frames as a
    chance to checkpoint or stop. ``done`` is how many frames are finished, those just
    yielded included, and ``counts`` covers exactly those frames: once the caller has
    sent what it was handed, a checkpoint of both is exact. ``start_after`` skips that
    many frames without parsing them, the resume of a checkpoint.
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        keep: KeepMode = "matched",
        start_after: int = 0,
        loads: Loads = json.loads,
    ) -> None:
        self.stream = stream
        self.keep = keep
        self.start_after = start_after
        self.loads = loads
        self.done = start_after
        self.counts = ReadCounts()
        # The frames read since ``done``, and what they added: committed together.
        self._pending = ReadCounts()

    def __iter__(self) -> Iterator[list[KeptRecord]]:
        joined: bytes | None = None
        joined_line = 0
        index = 0
        counts = self.counts
        noise_filter = self.keep != "all"
        for index, (frame_line, piece, split_before, split_after) in enumerate(self._frames(), start=1):
            if index <= self.start_after:
                continue
            frame, line = piece, frame_line
            if joined is not None:
                frame, line = joined + piece, joined_line
            elif not (split_before or split_after) and noise_filter and certainly_noise(frame):
                # Nothing is pending here (no frame yields twice), so count straight in.
                counts.read += 1
                counts.skipped += 1
                self.done = index
                if index % TICK_FRAMES == 0:
                    yield []
                continue
            try:
                value = self.loads(frame)
            except (ValueError, RecursionError):
                if split_after and len(frame) < MAX_RECORD_BYTES:
                    # `}{` inside a string value (a URI, a header) split a record: join the
                    # next frame on. Without this, a request could hide its own log record.
                    joined, joined_line = frame, line
                    continue
                joined = None
                self._pending.read += 1
                self._pending.note_bad(line, "not_json")
                self._commit(index)
                continue
            joined = None
            kept = list(self._frame_records(value, line, frame))
            # Committed before the hand-over: the caller sends a frame's records whole.
            self._commit(index)
            if kept or index % TICK_FRAMES == 0:
                yield kept
        if joined is not None:
            self._pending.read += 1
            self._pending.note_bad(joined_line, "not_json")
            self._commit(index)
        # A cut or corrupt compressed stream is counted where the frames ended.
        self.counts.add(self._pending)
        self._pending = ReadCounts()

    def _frame_records(self, value: Any, line: int, frame: bytes) -> Iterator[KeptRecord]:
        if isinstance(value, dict) and "messageType" in value and "logEvents" in value:
            yield from self._envelope(value, line)
            return
        self._pending.read += 1
        if not is_waf_record(value):
            self._pending.note_bad(line, "not_a_waf_record")
            return
        if not keep_record(value, self.keep):
            self._pending.skipped += 1
            return
        try:
            # Sent as the log holds it: the event key hashes the parsed record, so any
            # re-read of this line lands on the same event.
            body = frame.decode("utf-8").strip()
        except UnicodeDecodeError:
            self._pending.note_bad(line, "not_utf8")
            return
        self._pending.kept += 1
        yield KeptRecord(line, body)

    def _envelope(self, envelope: dict[str, Any], line: int) -> Iterator[KeptRecord]:
        if envelope.get("messageType") != "DATA_MESSAGE":
            return  # CONTROL_MESSAGE: CloudWatch checking the destination is reachable
        events = envelope.get("logEvents")
        for item in events if isinstance(events, list) else ():
            self._pending.read += 1
            message = item.get("message") if isinstance(item, dict) else None
            if not isinstance(message, str):
                self._pending.note_bad(line, "not_a_waf_record")
                continue
            if self.keep != "all" and certainly_noise(message):
                self._pending.skipped += 1
                continue
            try:
                record = self.loads(message)
            except (ValueError, RecursionError):
                self._pending.note_bad(line, "not_json")
                continue
            if not is_waf_record(record):
                self._pending.note_bad(line, "not_a_waf_record")
            elif keep_record(record, self.keep):
                self._pending.kept += 1
                yield KeptRecord(line, message)
            else:
                self._pending.skipped += 1

    def _commit(self, index: int) -> None:
        self.counts.add(self._pending)
        self._pending = ReadCounts()
        self.done = index

    def _frames(self) -> Iterator[tuple[int, bytes, bool, bool]]:
        """(line number, frame, split before, split after); a split is a ``}{`` boundary."""
        line_no = 0
        carry = b""
        carry_split = False
        at_line_start = True
        oversize = False
        while True:
            try:
                chunk = self.stream.readline(READ_CHUNK_BYTES)
            except (EOFError, zlib.error) as exc:
                # Truncated or corrupt compression: what was read stands, the rest is lost.
                self._pending.read += 1
                reason = "truncated_gzip" if isinstance(exc, EOFError) else "corrupt_gzip"
                self._pending.note_bad(line_no + 1 if at_line_start else line_no, reason)
                return
            if not chunk:
                if carry.strip():
                    yield line_no, carry, carry_split, False
                return
            if at_line_start:
                line_no += 1
            ended = chunk[-1:] == b"\n"
            if ended and not carry and not oversize and _SPLIT not in chunk:
                # The common case, one whole record on its line: no copies.
                if len(chunk) > 2 or chunk.strip():
                    yield line_no, chunk, False, False
                continue
            if oversize:
                oversize = not ended
                at_line_start = ended
                continue
            data = carry + chunk if carry else chunk
            if ended:
                data = data.rstrip(b"\r\n")
            pieces = data.split(_SPLIT) if _SPLIT in data else [data]
            last = len(pieces) - 1
            framed = [
                (b"{" if i else b"") + piece + (b"}" if i < last else b"") for i, piece in enumerate(pieces)
            ]
            emit = framed if ended else framed[:-1]
            for i, frame in enumerate(emit):
                before = carry_split if i == 0 else True
                after = i < last
                if frame.strip():
                    yield line_no, frame, before, after
            if ended:
                carry, carry_split, at_line_start = b"", False, True
                continue
            carry, carry_split, at_line_start = framed[-1], carry_split or last > 0, False
            if len(carry) > MAX_RECORD_BYTES:
                self._pending.read += 1
                self._pending.note_bad(line_no, "record_too_large")
                carry, carry_split, oversize = b"", False, True
