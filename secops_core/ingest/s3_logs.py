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
what becomes an event: ``relevant`` (the default: the catalog decides, and what is relevant
but cannot page is handed out to be counted in its window, docs/architecture.md,
"Relevance"), ``matched`` (a rule acted or matched, or any label), ``blocked`` (BLOCK,
CAPTCHA, CHALLENGE) or ``all``. A line that is certainly noise is counted and skipped on
its bytes, before the JSON parse (:func:`certainly_noise`; in ``relevant`` mode the
catalog's :meth:`~secops_core.ingest.log_filter.RelevanceFilter.certainly_noise`).

Nothing here stops on bad input: a line that is not JSON, not a WAF record or too large
is counted with its line number, and a corrupt or truncated gzip stream ends the read with
one bad line, the records before it kept. Only I/O errors of the stream itself propagate.

Bounds hold whatever the object holds (:class:`ReadLimits`): bytes and ratio inflated,
time, records kept per object and per CloudWatch envelope, the size of a kept record (what
the queue can carry); identical records are counted, not kept twice. A bound reached is
named in ``counts.limits``, never silent.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from secops_core.ingest.log_bytes import certainly_noise, certainly_noise_bytes, compact_default_allow
from secops_core.ingest.log_filter import Graded, RelevanceFilter
from secops_core.ingest.log_stream import LogStream, ReadLimitReached, open_log_stream
from secops_core.waf.actions import INTERRUPTING_ACTIONS
from secops_core.waf.names import DEFAULT_ACTION_RULE

__all__ = [
    "KEEP_MODES",
    "BadLine",
    "KeepMode",
    "KeptRecord",
    "LogObjectReader",
    "ReadCounts",
    "ReadLimits",
    "certainly_noise",
    "compact_default_allow",
    "is_waf_record",
    "keep_record",
    "open_log_stream",
]

KeepMode = Literal["relevant", "matched", "blocked", "all"]
KEEP_MODES: tuple[KeepMode, ...] = ("relevant", "matched", "blocked", "all")
Loads = Callable[[bytes | str], Any]

# One readline reads at most this much; a longer line (concatenated records) is framed
# in pieces of this size, so memory never holds more than one piece plus one record.
READ_CHUNK_BYTES = 1024 * 1024
# A CloudWatch Logs envelope carries up to about 1 MB of log events (PutLogEvents' batch);
# a WAF record is a few KiB. Anything beyond this is not a record and is skipped.
MAX_RECORD_BYTES = 4 * 1024 * 1024
# The object's record keeps the first bad lines; the count covers all of them.
MAX_BAD_LINES_KEPT = 100
# The reader hands control back at least this often (in frames, or in bytes framed or
# skipped) even when it keeps nothing, so a caller can checkpoint, heartbeat, honour a
# stop and the time bound inside a long run of noise, a long join or an oversized line.
TICK_FRAMES = 2000
TICK_BYTES = 16 * 1024 * 1024

_SPLIT = b"}{"
# The same search in a block of lines: re's literal scan is about 2.5 times bytes.find's
# for this two-byte needle, and it runs over every byte of every object.
_SPLIT_SEARCH = re.compile(re.escape(_SPLIT)).search
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class ReadLimits:
    """What one object may cost, whatever it holds (docs/architecture.md, "Consumers").

    ``None`` turns a bound off. The defaults are the worker's settings' defaults.
    """

    max_inflated_bytes: int | None = 4 * 1024**3
    max_inflation_ratio: float | None = 200.0
    max_read_s: float | None = 900.0
    max_kept: int | None = 50_000
    # PutLogEvents takes at most 10,000 log events per batch: a bigger envelope is forged.
    max_kept_per_envelope: int | None = 10_000
    # What one queue message can carry, less room for its attributes.
    max_kept_record_bytes: int = 128 * 1024


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


# ---- what a read hands out and counts -------------------------------------------------------


@dataclass(frozen=True)
class KeptRecord:
    """A record to turn into an event: its JSON text exactly as the log holds it; or, when
    ``counted`` is set (``relevant`` mode), one to count in its window instead."""

    line: int
    body: str
    counted: Graded | None = None


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


@dataclass
class ReadCounts:
    """Records read (a CloudWatch envelope counts its log events) and what became of each.

    ``read == kept + counted + skipped + bad + duplicates + capped``: a counted record is
    relevant but cannot page, handed out for its window's count, not as an event; a
    duplicate is a record to keep identical to one already kept from this object; a capped
    one is a record to keep past a bound on kept records. ``limits`` names every bound the
    object reached.
    """

    read: int = 0
    kept: int = 0
    skipped: int = 0
    bad: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    duplicates: int = 0
    capped: int = 0
    limits: list[str] = field(default_factory=list)
    counted: int = 0

    def add(self, other: ReadCounts) -> None:
        self.read += other.read
        self.kept += other.kept
        self.counted += other.counted
        self.skipped += other.skipped
        self.bad += other.bad
        self.duplicates += other.duplicates
        self.capped += other.capped
        room = MAX_BAD_LINES_KEPT - len(self.bad_lines)
        if room > 0:
            self.bad_lines.extend(other.bad_lines[:room])
        for name in other.limits:
            self.note_limit(name)

    def note_bad(self, line: int, reason: str) -> None:
        self.bad += 1
        if len(self.bad_lines) < MAX_BAD_LINES_KEPT:
            self.bad_lines.append(BadLine(line, reason))

    def note_limit(self, name: str) -> None:
        if name not in self.limits:
            self.limits.append(name)

    def refused(self, line: int, reason: str) -> None:
        """A kept record the queue would not take after all: a bad line with its reason."""
        self.kept -= 1
        self.note_bad(line, reason)


# ---- `}{` joins -----------------------------------------------------------------------------

_ESCAPED = re.compile(rb"\\.", re.DOTALL)
_STRINGS = re.compile(rb'"[^"]*"')


def _structure(piece: bytes, in_string: bool) -> tuple[bool, int]:
    """Whether ``piece`` ends inside a JSON string, and how much it opens minus closes.

    One pass of C-speed scans per piece: escapes dropped, then strings, then brackets
    counted. A piece of a `}{` run starts after a ``}`` and never inside an escape.
    """
    text = _ESCAPED.sub(b"", piece) if b"\\" in piece else piece
    if in_string:
        end = text.find(b'"')
        if end < 0:
            return True, 0
        text = text[end + 1 :]
    text = _STRINGS.sub(b"", text)
    opened = text.find(b'"')
    if opened >= 0:
        text, in_string = text[:opened], True
    else:
        in_string = False
    return in_string, text.count(b"{") + text.count(b"[") - text.count(b"}") - text.count(b"]")


class _Join:
    """A record that ``}{`` inside a string split: its pieces and JSON structure so far.

    Each piece is scanned once and the whole parsed once, when its brackets close, so a
    string holding any number of ``}{`` costs time linear in its length.
    """

    def __init__(self, line: int, first: bytes) -> None:
        self.line = line
        self.parts = bytearray(first)
        self.in_string, self.depth = _structure(first, False)

    def add(self, piece: bytes) -> None:
        self.parts += piece
        self.in_string, opened = _structure(piece, self.in_string)
        self.depth += opened

    @property
    def open(self) -> bool:
        return self.in_string or self.depth > 0


# ---- the reader -----------------------------------------------------------------------------

_Frame = tuple[int, bytes, bool, bool]


class _Block:
    """Whole lines read at once, none blank and none holding a `}{` (ends stripped);
    the first is line ``first`` of the object."""

    __slots__ = ("first", "lines")

    def __init__(self, first: int, lines: list[bytes]) -> None:
        self.first = first
        self.lines = lines


class LogObjectReader:
    """Iterates the records to keep in one log object; counts everything else.

    A *frame* is one record's bytes in the object: a line, or one object of a ``}{`` run
    (a CloudWatch envelope is one frame of many records). Iteration yields the kept
    records of one frame at a time, or an empty list at least every ``TICK_FRAMES``
    frames or ``TICK_BYTES`` bytes as a chance to checkpoint or stop. ``done`` is how many
    frames are finished, those just yielded included, and ``counts`` covers exactly those
    frames: once the caller has sent what it was handed, a checkpoint of both is exact.
    ``start_after`` skips that many frames without parsing them, the resume of a
    checkpoint. A bound reached ends the read early with one bad line naming it, or
    (kept records) counts the rest as ``capped``.
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        keep: KeepMode = "matched",
        start_after: int = 0,
        loads: Loads = json.loads,
        limits: ReadLimits | None = None,
        time_budget_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        relevance: RelevanceFilter | None = None,
    ) -> None:
        self.stream = stream
        self.keep = keep
        self.relevance = relevance if relevance is not None or keep != "relevant" else RelevanceFilter()
        self.start_after = start_after
        self.loads = loads
        self.limits = limits or ReadLimits(max_read_s=None)
        budget = self.limits.max_read_s if time_budget_s is None else time_budget_s
        self._clock = clock
        self._deadline = None if budget is None else clock() + budget
        self.done = start_after
        self.counts = ReadCounts()
        # What the reader is doing, for the checkpoint and the health beat.
        self.activity = "starting"
        # The frames read since ``done``, and what they added: committed together.
        self._pending = ReadCounts()
        self._seen: set[bytes] = set()
        self._since_tick = 0
        self._join: _Join | None = None

    @property
    def inflated_bytes(self) -> int:
        return self.stream.meter.inflated if isinstance(self.stream, LogStream) else 0

    @property
    def compressed_bytes(self) -> int:
        return self.stream.meter.compressed if isinstance(self.stream, LogStream) else 0

    def __iter__(self) -> Iterator[list[KeptRecord]]:
        self._join = None
        index = 0
        for item in self._frames():
            if item is None:
                # A tick: nothing framed for a while (blank lines, an oversized line).
                if (yield from self._tick(index)):
                    return
                continue
            if isinstance(item, _Block):
                after = yield from self._block(item, index)
                if after is None:
                    return
                index = after
                continue
            if self._since_tick >= TICK_BYTES and (yield from self._tick(index)):
                return
            index += 1
            if index <= self.start_after:
                continue
            line, piece, split_before, split_after = item
            self._since_tick += len(piece)
            result = self._frame(index, line, piece, split_before, split_after)
            if result or index % TICK_FRAMES == 0:
                if self._out_of_time(index, self._join):
                    return
                yield result or []
        join = self._join
        if join is not None:
            self._pending.read += 1
            self._pending.note_bad(join.line, "not_json")
            self._commit(index)
        # A cut or corrupt compressed stream is counted where the frames ended.
        self.counts.add(self._pending)
        self._pending = ReadCounts()
        self.activity = "done"

    def _block(self, block: _Block, index: int) -> Generator[list[KeptRecord], None, int | None]:
        """Whole lines with no `}{`, the common case: one frame per line exactly as a line
        read alone would be. Runs of noise go by in the filter's own loop and are counted
        in one step; ticks fall on the same frames as ever. Returns the last frame's
        number, or None when the time bound ended the read."""
        counts, noise_run = self.counts, self._noise_run()
        floor_key = self.relevance.floor_key if self.relevance is not None else None
        lines, at = block.lines, 0
        if index < self.start_after:
            at = min(len(lines), self.start_after - index)
            index += at
        while at < len(lines):
            # A tick when many bytes were framed since the last.
            if self._since_tick >= TICK_BYTES and (yield from self._tick(index)):
                return None
            key = None
            if noise_run is not None and self._join is None:
                stop = min(len(lines), at + TICK_FRAMES - index % TICK_FRAMES)
                run, key = noise_run(lines, at, stop)
                if run:
                    # Nothing is pending here (no frame yields twice): counted straight in.
                    counts.read += run
                    counts.skipped += run
                    self._since_tick += sum(map(len, lines[at : at + run])) + run
                    index += run
                    at += run
                    self.done = index
                    if index % TICK_FRAMES == 0:
                        if self._out_of_time(index, self._join):
                            return None
                        yield []
                if at == stop:
                    continue
                # The line that ended the run goes on with the floor key it was read by.
            elif floor_key is not None:
                key = floor_key(lines[at])
            raw = lines[at]
            index += 1
            self._since_tick += len(raw) + 1
            result = self._frame(index, block.first + at, raw + b"\n", False, False, key=key)
            at += 1
            if result or index % TICK_FRAMES == 0:
                if self._out_of_time(index, self._join):
                    return None
                yield result or []
        return index

    def _tick(self, index: int) -> Generator[list[KeptRecord], None, bool]:
        """A chance to checkpoint or stop; True when the time bound ended the read."""
        self._since_tick = 0
        if self._out_of_time(index, self._join):
            return True
        yield []
        return False

    def _frame(
        self,
        index: int,
        line: int,
        piece: bytes,
        split_before: bool,
        split_after: bool,
        *,
        key: bytes | None = None,
    ) -> list[KeptRecord] | None:
        """One frame: its kept records, or None (skipped, counted, or part of a join)."""
        join = self._join
        result: list[KeptRecord] | _Join | None
        if join is None:
            whole = not (split_before or split_after)
            if whole and key is None and self.relevance is not None:
                key = self.relevance.floor_key(piece)
            if whole and self._noise(piece, key):
                self.counts.read += 1
                self.counts.skipped += 1
                self.done = index
                return None
            result = self._take(index, piece, line, split_after, key=key)
        else:
            join.add(piece)
            if join.open and split_after and len(join.parts) < MAX_RECORD_BYTES:
                return None
            # Closed, or it can grow no more: parsed once, whatever it holds.
            result, self._join = self._take(index, bytes(join.parts), join.line, False), None
            self.activity = "framing"
        if isinstance(result, _Join):
            self._join = result
            return None
        return result

    def _take(
        self, index: int, frame: bytes, line: int, split_after: bool, *, key: bytes | None = None
    ) -> list[KeptRecord] | _Join | None:
        """One frame past the byte prefilter: its kept records (committed), a join to
        start, or None (counted)."""
        if self.relevance is not None and key is not None:
            # A floor key graded before (the line is a WAF record and valid JSON): an
            # event is sent as the log holds it, a counted record's window fields are
            # read alone; neither is built here.
            if self.relevance.known_event(key):
                self._pending.read += 1
                kept = list(self._keep_frame(line, frame))
                self._commit(index)
                return kept
            counted = self.relevance.known_counted(key, frame)
            if counted is not None:
                self._pending.read += 1
                self._pending.counted += 1
                self._commit(index)
                return [KeptRecord(line, "", counted)]
        if frame.startswith(_BOM):
            frame = frame[3:]
        try:
            value = self.loads(frame)
        except (ValueError, RecursionError):
            if split_after and len(frame) < MAX_RECORD_BYTES:
                candidate = _Join(line, frame)
                if candidate.open:
                    # `}{` inside a string value (a URI, a header) split a record: join the
                    # next frames on. Without this, a request could hide its own record.
                    self.activity = f"joining a record split by '}}{{' (line {line})"
                    return candidate
            self._pending.read += 1
            self._pending.note_bad(line, "not_json")
            self._commit(index)
            return None
        kept = list(self._frame_records(value, line, frame, key))
        # Committed before the hand-over: the caller sends a frame's records whole.
        self._commit(index)
        return kept

    def _out_of_time(self, index: int, join: _Join | None) -> bool:
        """Past the time bound: the read ends here with one bad line naming it."""
        if self._deadline is None or self._clock() <= self._deadline:
            return False
        # The read ends here for good: what is pending (an oversized line noted) counts too.
        self._commit(self.done)
        line = join.line if join is not None else index
        self._end_at_limit(line, "read_time")
        return True

    def _end_at_limit(self, line: int, name: str) -> None:
        self.counts.read += 1
        self.counts.note_bad(line, f"limit_{name}")
        self.counts.note_limit(name)
        self.activity = f"stopped at the {name} bound"

    def _frame_records(self, value: Any, line: int, frame: bytes, key: bytes | None) -> Iterator[KeptRecord]:
        """``key``: the frame's floor key, when it has one (the fast path's miss)."""
        if isinstance(value, dict) and "messageType" in value and "logEvents" in value:
            yield from self._envelope(value, line)
            return
        self._pending.read += 1
        if not is_waf_record(value):
            self._pending.note_bad(line, "not_a_waf_record")
            return
        keep, counted = self._decide(value, key)
        if counted is not None:
            self._pending.counted += 1
            yield KeptRecord(line, "", counted)
            return
        if not keep:
            self._pending.skipped += 1
            return
        yield from self._keep_frame(line, frame)

    def _keep_frame(self, line: int, frame: bytes) -> Iterator[KeptRecord]:
        """A WAF record's frame to keep, handed out if it is admitted."""
        try:
            # Sent as the log holds it: the event key hashes the parsed record, so any
            # re-read of this line lands on the same event.
            body = frame.decode("utf-8").strip()
        except UnicodeDecodeError:
            self._pending.note_bad(line, "not_utf8")
            return
        if self._admit(line, body, len(frame), None):
            yield KeptRecord(line, body)

    def _envelope(self, envelope: dict[str, Any], line: int) -> Iterator[KeptRecord]:
        if envelope.get("messageType") != "DATA_MESSAGE":
            return  # CONTROL_MESSAGE: CloudWatch checking the destination is reachable
        events = envelope.get("logEvents")
        kept_here = [0]
        for item in events if isinstance(events, list) else ():
            self._pending.read += 1
            message = item.get("message") if isinstance(item, dict) else None
            if not isinstance(message, str):
                self._pending.note_bad(line, "not_a_waf_record")
                continue
            message = message.removeprefix("\ufeff")
            key = self.relevance.floor_key(message) if self.relevance is not None else None
            if self._noise(message, key):
                self._pending.skipped += 1
                continue
            try:
                record = self.loads(message)
            except (ValueError, RecursionError):
                self._pending.note_bad(line, "not_json")
                continue
            if not is_waf_record(record):
                self._pending.note_bad(line, "not_a_waf_record")
                continue
            keep, counted = self._decide(record, key)
            if counted is not None:
                self._pending.counted += 1
                yield KeptRecord(line, "", counted)
            elif not keep:
                self._pending.skipped += 1
            elif self._admit(line, message, len(message.encode("utf-8")), kept_here):
                yield KeptRecord(line, message)

    def _noise_run(self) -> Callable[[list[bytes], int, int], tuple[int, bytes | None]] | None:
        """How many lines from ``start`` (up to ``stop``) are noise this mode skips
        unparsed: the catalog's floor keys (``relevant``), the byte prefilter (``matched``,
        ``blocked``) or None (``all``: nothing is skipped)."""
        if self.keep == "all":
            return None
        if self.relevance is not None:
            return self.relevance.noise_run
        return _byte_noise_run

    def _noise(self, raw: bytes | str, key: bytes | None) -> bool:
        """Noise this mode skips unparsed: a known floor ``key`` (the record's) in a
        ``relevant`` read, the byte prefilter in a ``matched`` or ``blocked`` one."""
        if self.keep == "all":
            return False
        if self.relevance is not None:
            return self.relevance.known_noise(key)
        return certainly_noise(raw)

    def _decide(self, record: dict[str, Any], key: bytes | None = None) -> tuple[bool, Graded | None]:
        """(keep as an event, or the catalog's verdict when the record is only counted);
        the verdict of a record with a floor ``key`` is remembered for the fast path."""
        if self.keep != "relevant" or self.relevance is None:
            return keep_record(record, self.keep), None
        graded = self.relevance.grade(record)
        self.relevance.remember(key, graded)
        if graded is None:
            # Not a record the catalog can grade: sent on, to be rejected with its reason.
            return True, None
        relevance = graded.relevance.value
        if relevance == "counted":
            return False, graded
        return relevance == "event", None

    def _admit(self, line: int, body: str, size: int, kept_here: list[int] | None) -> bool:
        """Whether a record to keep is handed out: it fits a queue message, is not a copy
        of one already kept from this object, and no bound on kept records is reached."""
        limits, pending = self.limits, self._pending
        if size > limits.max_kept_record_bytes:
            pending.note_bad(line, "record_too_large_for_queue")
            return False
        digest = hashlib.blake2b(body.encode("utf-8"), digest_size=16).digest()
        if digest in self._seen:
            pending.duplicates += 1
            return False
        if kept_here is not None and limits.max_kept_per_envelope is not None:
            if kept_here[0] >= limits.max_kept_per_envelope:
                pending.capped += 1
                pending.note_limit("kept_per_envelope")
                return False
            kept_here[0] += 1
        if limits.max_kept is not None and self.counts.kept + pending.kept >= limits.max_kept:
            pending.capped += 1
            pending.note_limit("kept_per_object")
            return False
        self._seen.add(digest)
        pending.kept += 1
        return True

    def _commit(self, index: int) -> None:
        self.counts.add(self._pending)
        self._pending = ReadCounts()
        self.done = index

    def _frames(self) -> Iterator[_Frame | _Block | None]:
        """(line number, frame, split before, split after); a split is a ``}{`` boundary.

        ``None`` is a tick: many lines or bytes went by (blank lines, an oversized line
        skipped) with no frame.
        """
        line_no = 0
        carry = b""
        carry_split = False
        at_line_start = True
        oversize = False
        # Work done since the last frame: a line, plus a unit per 512 bytes.
        quiet = 0
        self.activity = "framing"
        while True:
            # What the buffer holds already, framed a block of lines at a time.
            block = self._whole_lines(line_no + 1) if at_line_start and not (oversize or carry) else []
            if block is None:
                return
            if block:
                first, quiet, line_no = line_no + 1, 0, line_no + len(block)
                yield _Block(first, block)
                continue
            chunk = self._readline(line_no + 1 if at_line_start else line_no)
            if not chunk:
                if chunk is not None and carry.strip():
                    yield line_no, carry, carry_split, False
                return
            if at_line_start:
                line_no += 1
            ended = chunk[-1:] == b"\n"
            if oversize:
                oversize, at_line_start = not ended, ended
            elif not carry and ended and _SPLIT not in chunk:
                # The common case, one whole record on its line: no copies.
                if len(chunk) > 2 or chunk.strip():
                    quiet = 0
                    yield line_no, chunk, False, False
                    continue
                # A blank line: the blank lines after it go by at C speed, counted.
                blank = self._skip_line_ends(line_no + 1)
                if blank is None:
                    return
                line_no += blank[0]
                quiet += blank[1] // 512
            else:
                emit, rest = _split_run(carry + chunk if carry else chunk, ended)
                for i, frame in enumerate(emit):
                    if frame.strip():
                        quiet = 0
                        after = rest is not None or i < len(emit) - 1
                        yield line_no, frame, carry_split if i == 0 else True, after
                if rest is None:
                    carry, carry_split, at_line_start = b"", False, True
                else:
                    carry, carry_split, at_line_start = rest, carry_split or bool(emit), False
                    if len(carry) > MAX_RECORD_BYTES:
                        self._oversized(line_no, carry)
                        carry, carry_split, oversize = b"", False, True
            # A blank line, or a piece of an oversized one: nothing framed, but work done.
            quiet += 1 + len(chunk) // 512
            if quiet >= TICK_FRAMES:
                quiet = 0
                yield None

    def _whole_lines(self, line: int) -> list[bytes] | None:
        """The whole lines the stream's buffer holds up to the first blank line or `}{`,
        consumed (empty: the next line takes the line-by-line path; None: the stream
        ended early, counted here)."""
        if not isinstance(self.stream, LogStream):
            return []
        try:
            ahead = self.stream.peek(READ_CHUNK_BYTES)
            if len(ahead) > READ_CHUNK_BYTES:
                # No line longer than a readline's piece: those are framed piece by piece.
                ahead = ahead[:READ_CHUNK_BYTES]
        except (ReadLimitReached, EOFError, zlib.error) as exc:
            self._stream_failed(exc, line)
            return None
        end = ahead.rfind(b"\n") + 1
        split = _SPLIT_SEARCH(ahead, 0, end)
        if split is not None:
            end = ahead.rfind(b"\n", 0, split.start()) + 1
        if end <= 0:
            return []
        # Split whole, the unfinished tail (or what follows a `}{` line) dropped after.
        lines = ahead.split(b"\n")
        del lines[len(lines) - 1 - ahead.count(b"\n", end) :]
        if min(map(len, lines)) < 2:
            # A blank line (its end alone, or after one whitespace byte) is skipped with
            # the line ends after it (_skip_line_ends): the block stops before it.
            for at, text in enumerate(lines):
                if len(text) < 2 and not text.strip():
                    del lines[at:]
                    break
            if not lines:
                return []
            end = sum(map(len, lines)) + len(lines)
        self.stream.read(end)
        return lines

    def _oversized(self, line: int, head: bytes) -> None:
        self._pending.read += 1
        envelope = b'"logEvents"' in head[:4096] or b'"messageType"' in head[:4096]
        self._pending.note_bad(line, "envelope_too_large" if envelope else "record_too_large")
        self.activity = f"skipping an oversized line (line {line})"

    def _skip_line_ends(self, line: int) -> tuple[int, int] | None:
        """Consume the line ends that come next: how many lines they ended and how many
        bytes they were (None: the stream ended early, counted here)."""
        lines = skipped = 0
        while True:
            try:
                ahead = self.stream.peek(READ_CHUNK_BYTES) if isinstance(self.stream, LogStream) else b""
            except (ReadLimitReached, EOFError, zlib.error) as exc:
                self._stream_failed(exc, line)
                return None
            run = len(ahead) - len(ahead.lstrip(b"\r\n"))
            if not run:
                return lines, skipped
            lines += ahead.count(b"\n", 0, run)
            skipped += run
            self.stream.read(run)

    def _readline(self, line: int) -> bytes | None:
        """The next piece of a line; None when the stream ends early (counted here)."""
        try:
            return self.stream.readline(READ_CHUNK_BYTES)
        except (ReadLimitReached, EOFError, zlib.error) as exc:
            self._stream_failed(exc, line)
        return None

    def _stream_failed(self, exc: Exception, line: int) -> None:
        if isinstance(exc, ReadLimitReached):
            self._end_at_limit(line, exc.reason)
            return
        # Truncated or corrupt compression: what was read stands, the rest is lost.
        self._pending.read += 1
        self._pending.note_bad(line, "truncated_gzip" if isinstance(exc, EOFError) else "corrupt_gzip")


def _byte_noise_run(lines: list[bytes], start: int, stop: int) -> tuple[int, None]:
    """How many of ``lines[start:stop]`` in a row are certainly noise on their bytes (a
    byte prefilter reads no floor key)."""
    at = start
    while at < stop and certainly_noise_bytes(lines[at]):
        at += 1
    return at - start, None


def _split_run(data: bytes, ended: bool) -> tuple[list[bytes], bytes | None]:
    """The frames of ``data`` split at ``}{``, and the unfinished rest (None if the line
    ended): its last frame waits for the next piece of the line."""
    if ended:
        data = data.rstrip(b"\r\n")
    pieces = data.split(_SPLIT) if _SPLIT in data else [data]
    last = len(pieces) - 1
    framed = [(b"{" if i else b"") + piece + (b"}" if i < last else b"") for i, piece in enumerate(pieces)]
    if ended:
        return framed, None
    return framed[:-1], framed[-1]
