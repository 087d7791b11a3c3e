"""Properties of the CLI's input readers and the worker's queue-message parser.

- ``read_records`` over any text never raises, except ``InputError`` for text that is
  not UTF-8 (a file's bad bytes, or stdin's lone surrogates), and yields exactly one
  record per non-blank, non-comment line (or one per item of a file that is a single
  JSON array), each either a parsed value or an error.
- ``open_input`` + ``read_records`` over any bytes in a file: ``InputError`` exactly
  when the bytes are not UTF-8.
- ``worker.pipeline.processor.parse_message`` raises only ``ContractError`` or ``PermanentError``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any

from hypothesis import event, example, given
from hypothesis import strategies as st

from secops_core.errors import ContractError
from tests.fuzz import strategies as s
from tests.fuzz.properties import assert_contract_error, assert_valid_event, production_recursion_limit
from worker.errors import PermanentError
from worker.ops.inputs import InputError, InputRecord, open_input, read_records
from worker.pipeline.processor import parse_message


def _line_of(value: Any, ascii_only: bool) -> str:
    """One JSON line; raw non-ASCII (U+2028, NEL ...) unless that would write a surrogate."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text if not s.has_surrogate(text) else json.dumps(value)


json_lines = st.builds(_line_of, s.weighted((3, s.valid_events), (1, s.json_values)), st.booleans())
other_lines = st.one_of(
    st.sampled_from(
        [
            "",
            "   ",
            "\t",
            "# a comment",
            "   # indented comment",
            "#",
            "not json",
            "{",
            "[1, 2",
            '{"a": 1} trailing',
            "null",
            "1" * 5000,  # an integer literal longer than json accepts
            "[" * 5000,
            '{"uri": "/a\u2028b"}',
            '{"ua": "x\x85y"}',
            '{"k": "\u2029"}',
            "\ufeff{}",
        ]
    ),
    s.field_texts,
)
lines = st.lists(s.weighted((2, json_lines), (1, other_lines)), max_size=8)
documents = st.one_of(
    st.builds(lambda items, sep: sep.join(items), lines, st.sampled_from(["\n", "\r\n"])),
    st.builds(lambda items: json.dumps(items, indent=2), st.lists(s.valid_events, max_size=4)),
    st.text(alphabet=s.any_chars),
)


def expected_records(text: str) -> list[tuple[int, str]] | list[Any]:
    """What the reader must yield: JSON-array items, else (line number, stripped line)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except (ValueError, RecursionError):
            items = None
        if isinstance(items, list):
            return items
    return [
        (number, line.strip())
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip() and not line.strip().startswith("#")
    ]


def check_records(text: str, records: list[InputRecord]) -> None:
    expected = expected_records(text)
    assert len(records) == len(expected), (len(records), len(expected))
    if expected and not isinstance(expected[0], tuple):
        # A file that is one JSON array: one record per item, numbered from 1.
        assert [r.line for r in records] == list(range(1, len(expected) + 1))
        assert [json.dumps(r.value) for r in records] == [json.dumps(item) for item in expected]
        return
    for record, (number, body) in zip(records, expected, strict=True):
        assert record.line == number
        if record.error is None:
            assert record.text == body
            assert json.dumps(record.value) == json.dumps(json.loads(body))
        else:
            assert record.error.strip()
            assert record.value is None
            assert body.startswith(record.text)
    event(
        f"{sum(r.error is None for r in records)} parsed, {sum(r.error is not None for r in records)} errors"
    )


def read_all(stream: Any) -> list[InputRecord]:
    with production_recursion_limit():
        return list(read_records(stream))


@s.fuzz_settings(100)
@given(text=documents)
@example(text='{"uri": "/a\u2028b", "action": "BLOCK"}\n{"k": 1}')
@example(text="1" * 5000)
def test_read_records_yields_one_record_per_line_and_never_raises(text: str) -> None:
    if s.has_surrogate(text):
        try:
            read_all(io.StringIO(text))
        except InputError as exc:
            assert "not UTF-8" in str(exc)
            return
        raise AssertionError("lone surrogates (stdin's undecodable bytes) were not refused")
    check_records(text, read_all(io.StringIO(text)))


@s.fuzz_settings(40)
@given(
    data=st.one_of(
        documents.map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.binary(max_size=200),
        st.builds(
            b"\r".join,
            st.lists(lines.map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")), max_size=3),
        ),
    )
)
@example(data=b'{"a": 1}\n\xff\xfe\n')
@example(data=b"\xef\xbb\xbf" + b'{"a": 1}\n')
def test_a_file_of_any_bytes_reads_or_fails_with_an_input_error(data: bytes) -> None:
    handle, path = tempfile.mkstemp(suffix=".jsonl")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        try:
            with open_input(path) as stream:
                records = read_all(stream)
        except InputError:
            assert text is None, "valid UTF-8 was refused"
            return
        assert text is not None, "invalid UTF-8 was read"
        # Files are read with universal newlines (\r\n and \r end a line like \n), and a
        # leading byte order mark is not part of the first record.
        check_records(text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n"), records)
    finally:
        os.unlink(path)


def parse(body: str) -> None:
    try:
        with production_recursion_limit():
            parsed = parse_message(body)
    except ContractError as exc:
        assert_contract_error(exc)
        event(f"rejected: {exc.code}")
        return
    except PermanentError as exc:
        event(f"permanent: {exc.reason}")
        return
    event(f"parsed: {parsed.workflow}")
    assert_valid_event(parsed.event)


@s.fuzz_settings(80)
@given(
    body=st.one_of(
        s.payloads.map(json.dumps),
        s.events.map(json.dumps),
        s.raw_bodies.map(lambda raw: raw.decode("utf-8", "replace")),
        st.text(alphabet=s.any_chars, max_size=50),
    )
)
@example(body='{"action": "monitor", "hours": Infinity}')
@example(body='{"action": "analyze", "event": ' + "[" * 900 + "]" * 900 + "}")
def test_parse_message_raises_only_contract_or_permanent_errors(body: str) -> None:
    parse(body)
