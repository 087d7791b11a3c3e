"""A log object's bytes as one decompressed stream, metered against its bounds.

gzip or plain, told apart by the gzip magic number, never by the key's suffix; gzip
members concatenated one after another (Firehose, CloudWatch Logs subscriptions) read
as one stream, whatever their number and size (docs/architecture.md, "Consumers").

The :class:`StreamMeter` counts compressed and decompressed bytes and raises
:class:`ReadLimitReached` once the object inflates past its byte bound or its ratio bound:
a gzip bomb ends its own read after a bounded amount of work, and the reader records why.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from types import ModuleType
from typing import IO, Any


def _inflate_module() -> ModuleType:
    """zlib-ng's bindings where they are installed (a wheel for every platform the images
    use): they inflate about three times faster than the stdlib's zlib, and inflating is
    the larger part of a read once noise is skipped unbuilt. The stdlib is the fallback."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:  # pragma: no cover - the images and the lock install it
        return zlib
    return zlib_ng


_INFLATE = _inflate_module()

_GZIP_MAGIC = b"\x1f\x8b"
# Compressed bytes read at a time; decompressed output is bounded by the reader's buffer.
_GZIP_READ_BYTES = 64 * 1024
_INFLATED_BUFFER_BYTES = 256 * 1024
# Below this much output the ratio is not judged: a small object may inflate far (a
# log of identical noise does) and still costs nothing to read.
RATIO_GRACE_BYTES = 64 * 1024 * 1024


class ReadLimitReached(Exception):
    """The object reached one of its bounds; ``reason`` names it (``inflated_bytes`` ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class StreamMeter:
    """Bytes taken from the object and bytes handed to the framer, with their bounds."""

    max_inflated_bytes: int | None = None
    max_ratio: float | None = None
    compressed: int = 0
    inflated: int = 0

    def took(self, size: int) -> None:
        self.compressed += size

    def gave(self, size: int) -> None:
        self.inflated += size
        if self.max_inflated_bytes is not None and self.inflated > self.max_inflated_bytes:
            raise ReadLimitReached(
                "inflated_bytes", f"the object inflates past {self.max_inflated_bytes:,} bytes"
            )
        if (
            self.max_ratio is not None
            and self.inflated > RATIO_GRACE_BYTES
            and self.inflated > self.max_ratio * max(self.compressed, 1)
        ):
            raise ReadLimitReached(
                "inflation_ratio",
                f"the object inflates more than {self.max_ratio:g} times "
                f"({self.inflated:,} bytes from {self.compressed:,})",
            )


class _BodyReader(io.RawIOBase):
    """Any object with ``read(n)`` (botocore's StreamingBody) as a raw stream to buffer."""

    def __init__(self, body: Any, meter: StreamMeter) -> None:
        self._body = body
        self._meter = meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self._meter.took(size)
        return size


class _Gunzip(io.RawIOBase):
    """Streaming gunzip of one or more concatenated members, output bounded per call.

    Unlike ``gzip.GzipFile`` under a buffer, a truncated stream hands out every byte it
    decompressed before the cut and only then raises ``EOFError``, so each whole line
    before the cut is read.
    """

    def __init__(self, raw: IO[bytes], meter: StreamMeter) -> None:
        self._raw = raw
        self._meter = meter
        self._inflate = _INFLATE
        self._member = self._inflate.decompressobj(wbits=31)
        self._in_member = False
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._out:
            self._out = self._fill(len(buffer))
            self._meter.gave(len(self._out))
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
                self._member = member = self._inflate.decompressobj(wbits=31)
            elif member.unconsumed_tail:
                data = member.unconsumed_tail
            else:
                data = self._raw.read(_GZIP_READ_BYTES)
                if not data:
                    if self._in_member:
                        raise EOFError("compressed stream ended before the end-of-stream marker")
                    return b""
            self._in_member = True
            try:
                out: bytes = member.decompress(data, limit)
            except self._inflate.error as exc:
                # Whichever library inflates, the reader sees the stdlib's error.
                raise zlib.error(str(exc)) from exc
            if member.eof:
                self._in_member = False
            if out:
                return out


class _Plain(io.RawIOBase):
    """A plain object: what the framer reads is what was downloaded, metered the same way."""

    def __init__(self, raw: IO[bytes], meter: StreamMeter) -> None:
        self._raw = raw
        self._meter = meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self._meter.gave(size)
        return size


class LogStream(io.BufferedReader):
    """The decompressed bytes of one object; ``meter`` says how far it got."""

    def __init__(self, raw: io.RawIOBase, meter: StreamMeter) -> None:
        super().__init__(raw, buffer_size=_INFLATED_BUFFER_BYTES)
        self.meter = meter


def open_log_stream(
    body: Any, *, max_inflated_bytes: int | None = None, max_ratio: float | None = None
) -> LogStream:
    """A buffered, decompressed view of ``body``: gunzipped if it starts with gzip's magic."""
    meter = StreamMeter(max_inflated_bytes, max_ratio)
    buffered = io.BufferedReader(_BodyReader(body, meter), buffer_size=_GZIP_READ_BYTES)
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        return LogStream(_Gunzip(buffered, meter), meter)
    return LogStream(_Plain(buffered, meter), meter)
