"""Streaming readers: the header picks the format; each row is parsed as it is read.

Readers stop at the first defect with a ScenarioError naming line and field (the validator
is the tool that lists every defect).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Iterator
from typing import IO, NoReturn, TypeVar

from scenario_csv.convert import main_to_ten_minute, ten_minute_to_main
from scenario_csv.errors import Defect, FieldError, ScenarioError
from scenario_csv.fields import parse_count, parse_id, parse_rate
from scenario_csv.formats import (
    FIELDS,
    HEADERS,
    SEPARATOR,
    ScenarioFormat,
    detect_format,
)
from scenario_csv.rows import ScenarioRow, TenMinuteRow

MAX_LINE_LENGTH = 1000
T = TypeVar("T")


def text_lines(stream: IO[bytes], max_length: int = MAX_LINE_LENGTH) -> Iterator[str]:
    """Lines of a binary stream as text, in bounded memory.

    Bytes that are not UTF-8 become U+FFFD (so the field holding them is reported, with its
    line, instead of the whole file failing); a line longer than `max_length` is cut to
    `max_length + 1` characters (the rest is skipped) so that a validator sees it is too long.
    The stream is left open.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="\n")
    readline = text.readline
    limit = max_length + 1
    try:
        while line := readline(limit):
            if len(line) == limit and not line.endswith("\n"):
                while (rest := readline(1 << 16)) and not rest.endswith("\n"):
                    pass
            yield line
    finally:
        with contextlib.suppress(ValueError):  # the caller may have closed it already
            text.detach()  # so that closing the wrapper does not close the caller's stream


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, start=1):
        yield number, line.rstrip("\r\n")


class _Rows:
    """The header, read eagerly, and an iterator over the numbered, non-blank lines after it."""

    def __init__(self, lines: Iterable[str], source: str | None) -> None:
        self.source = source
        self._lines = _numbered(lines)
        first = next(self._lines, None)
        if first is None:
            self._fail(1, "header", "the file is empty")
        fmt = detect_format(first[1])
        if fmt is None:
            wanted = " or ".join(repr(h) for h in HEADERS.values())
            self._fail(1, "header", f"expected {wanted}, got {first[1][:80]!r}")
        self.format: ScenarioFormat = fmt

    def _fail(self, line: int, field: str, message: str) -> NoReturn:
        raise ScenarioError(Defect(line, field, message), self.source)

    def fields(self) -> Iterator[tuple[int, list[str]]]:
        width = len(FIELDS[self.format])
        for number, line in self._lines:
            if not line.strip():
                continue
            parts = line.split(SEPARATOR)
            if len(parts) != width:
                self._fail(number, "row", f"has {len(parts)} fields separated by ';', not {width}")
            yield number, parts

    def field(self, number: int, name: str, parser: Callable[[str], T], text: str) -> T:
        try:
            return parser(text)
        except FieldError as exc:
            raise ScenarioError(Defect(number, name, str(exc)), self.source) from None

    def main(self) -> Iterator[ScenarioRow]:
        for n, (caller, callee, wait, second, rate) in self.fields():
            yield ScenarioRow(
                caller=self.field(n, "caller", parse_id, caller),
                callee=self.field(n, "callee", parse_id, callee),
                wait_before_next_in_ms=self.field(n, "wait_before_next_in_ms", parse_count, wait),
                seconds_since_start=self.field(n, "seconds_since_start", parse_count, second),
                arrival_rate_in_s=self.field(n, "arrival_rate_in_s", parse_rate, rate),
            )

    def ten_minute(self) -> Iterator[TenMinuteRow]:
        last_ms = 0
        for n, (slot_text, ms_text, calls, caller, callee) in self.fields():
            slot = self.field(n, "ten_minute", parse_count, slot_text)
            ms = self.field(n, "milliseconds", parse_count, ms_text)
            if ms < last_ms:
                self._fail(n, "milliseconds", f"{ms} goes back from {last_ms}")
            # the slot index is redundant (ms // 600000 in csvgen's files): the validator
            # checks it, the reader does not need it
            last_ms = ms
            yield TenMinuteRow(
                ten_minute=slot,
                milliseconds=ms,
                calls_in_ten_minutes=self.field(n, "calls_in_ten_minutes", parse_count, calls),
                caller=self.field(n, "caller", parse_id, caller),
                callee=self.field(n, "callee", parse_id, callee),
            )


def read_main(lines: Iterable[str], source: str | None = None) -> Iterator[ScenarioRow]:
    """Rows of either format as main-format rows (the ten_minute variant is converted)."""
    rows = _Rows(lines, source)
    if rows.format is ScenarioFormat.MAIN:
        return rows.main()
    return ten_minute_to_main(rows.ten_minute())


def read_ten_minute(lines: Iterable[str], source: str | None = None) -> Iterator[TenMinuteRow]:
    """Rows of either format as ten_minute rows (the main format is converted)."""
    rows = _Rows(lines, source)
    if rows.format is ScenarioFormat.TEN_MINUTE:
        return rows.ten_minute()
    return main_to_ten_minute(rows.main())
