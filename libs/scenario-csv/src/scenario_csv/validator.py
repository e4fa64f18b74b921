"""Streaming validator: every defect of a scenario file, with line and field, in bounded memory.

Checks (paper section 3.5.1 and more):
- header: one of the two formats; every row has 5 fields; no blank lines between rows;
- IDs: 4-digit zero-padded `PPNN` (the paper's `700` for pod 7 is caught);
- pairing convention (switchable): callers in even pods, callee = next odd pod, same phone;
- numbers: waits, seconds, milliseconds, counts are whole numbers >= 0, rates finite >= 0;
- time: seconds_since_start never goes back and agrees with the cumulative waits (main);
  milliseconds never go back and ten_minute = milliseconds // 600000 (ten_minute variant);
- rates (switchable, see realized.py): one declared rate per second, realized per-second rate
  against it; in the variant, calls_in_ten_minutes is one value per slot, equal to its rows.

Use: `run = validate(lines); for defect in run: ...; run.summary` (complete once exhausted).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from scenario_csv.errors import Defect, FieldError
from scenario_csv.fields import parse_count, parse_rate
from scenario_csv.formats import (
    HEADERS,
    SEPARATOR,
    TEN_MINUTES_MS,
    ScenarioFormat,
    detect_format,
)
from scenario_csv.ids import PARTNERS, VALID_IDS, id_problem, pairing_problem
from scenario_csv.realized import RateCheck, RealizedRateCheck, SecondWaits

MAX_LINE_LENGTH = 1000
_FAR = 1 << 62
_FAST_DIGITS = 16  # fewer digits are below MAX_COUNT: int() at once, no bounds check


@dataclass(frozen=True, slots=True)
class ValidationOptions:
    pairing_convention: bool = True
    rate_check: RateCheck = "statistical"
    z_limit: float = 6.0
    max_line_length: int = MAX_LINE_LENGTH


@dataclass(slots=True)
class ScenarioSummary:
    """What the file asks of the testbed; complete once the validation has run to its end."""

    format: ScenarioFormat | None = None
    rows: int = 0
    defects: int = 0
    first_second: int = 0
    duration_s: float = 0.0
    peak_rate: float = 0.0  # highest declared rate (variant: calls_in_ten_minutes / 600)
    mean_rate: float = 0.0  # rows / duration
    peak_second_invites: int = 0  # most invites in one second
    pods: list[int] = field(default_factory=list)  # pods that callers and callees use
    phones_per_pod: int = 0  # highest phone number + 1

    @property
    def valid(self) -> bool:
        return self.defects == 0

    @property
    def pods_needed(self) -> int:
        """Client pods to deploy: pods are numbered from 0, so the highest one used + 1."""
        return self.pods[-1] + 1 if self.pods else 0


class Validation(Iterator[Defect]):
    """An iterator over the defects of `lines`; `summary` is complete once it is exhausted."""

    def __init__(self, lines: Iterable[str], options: ValidationOptions) -> None:
        self.options = options
        self.summary = ScenarioSummary()
        self._ids: set[str] = set()
        self._defects = self._run(iter(lines))

    def __next__(self) -> Defect:
        defect = next(self._defects)
        self.summary.defects += 1
        return defect

    def __iter__(self) -> Validation:
        return self

    def _run(self, lines: Iterator[str]) -> Iterator[Defect]:
        max_length = self.options.max_line_length
        first = next(lines, None)
        if first is None:
            yield Defect(1, "header", "the file is empty")
            return
        text = first.rstrip("\r\n")
        fmt = detect_format(text)
        start = 2
        if fmt is None:
            wanted = " or ".join(repr(h) for h in HEADERS.values())
            yield Defect(1, "header", f"expected {wanted}, got {text[:80]!r}")
            fmt = _guess_format(text)
            if any(part.strip().isdigit() for part in text.split(SEPARATOR)):
                lines, start = _chain(first, lines), 1  # a headerless file: line 1 is a row
        self.summary.format = fmt
        rows = _rows(lines, start, max_length)
        if fmt is ScenarioFormat.MAIN:
            yield from self._main(rows)
        else:
            yield from self._ten_minute(rows)
        if self.summary.rows == 0:
            yield Defect(2, "row", "no invites after the header")
        self._finish_summary()

    def _finish_summary(self) -> None:
        summary = self.summary
        valid = self._ids & VALID_IDS
        summary.pods = sorted({int(i[:2]) for i in valid})
        summary.phones_per_pod = max((int(i[2:]) for i in valid), default=-1) + 1
        if summary.duration_s > 0:
            summary.mean_rate = summary.rows / summary.duration_s

    # The hot loops below are written out inline: a method call per row would halve the speed.

    def _main(self, rows: Iterator[tuple[int, str]]) -> Iterator[Defect]:
        opts = self.options
        valid_ids = VALID_IDS
        partners = PARTNERS if opts.pairing_convention else None
        strict = opts.rate_check == "deterministic"
        rates = RealizedRateCheck(opts.rate_check, opts.z_limit)
        ids = self._ids
        summary = self.summary
        n_rows = 0
        # timeline: the first invite is at t0 ms, t0 within [lo, hi]; elapsed = waits so far
        lo, hi, elapsed = -_FAR, _FAR, 0
        alt: tuple[int, int] | None = None
        first_second = -1
        last_second, last_second_line = -1, 0
        second_text, parsed_second = "", -1  # the last seconds field parsed, and its value
        rate_text, rate = "", -1.0
        # the second being counted
        cur_second, cur_count, cur_rate, cur_line, cur_rate_text = -1, 0, 0.0, 0, ""
        waits = SecondWaits()
        peak_rate = 0.0
        peak_count = 0

        for number, line in rows:
            parts = line.split(SEPARATOR)
            if len(parts) != 5:
                yield _field_count(number, parts, opts.max_line_length)
                lo, hi, elapsed, alt = -_FAR, _FAR, 0, None
                continue
            caller, callee, wait_text, sec_text, r_text = parts
            n_rows += 1
            caller_ok = caller in valid_ids
            callee_ok = callee in valid_ids
            ids.add(caller)
            ids.add(callee)
            if not caller_ok:
                yield Defect(number, "caller", id_problem(caller))
            if not callee_ok:
                yield Defect(number, "callee", id_problem(callee))
            if partners is not None and caller_ok and callee_ok and partners.get(caller) != callee:
                which = "caller" if caller not in partners else "callee"
                yield Defect(number, which, str(pairing_problem(caller, callee)))

            if len(wait_text) < _FAST_DIGITS and wait_text.isdigit() and wait_text.isascii():
                wait = int(wait_text)
            elif (slow := _count_or_none(wait_text)) is not None:
                wait = slow
            else:
                yield _bad_field(number, "wait_before_next_in_ms", wait_text, "milliseconds")
                wait = -1

            if sec_text != second_text or sec_text == "":
                second = -1
                try:
                    second = parse_count(sec_text, "seconds")
                    second_text, parsed_second = sec_text, second
                except FieldError as exc:
                    yield Defect(number, "seconds_since_start", str(exc))
                    second_text = ""
            else:
                second = parsed_second

            if r_text != rate_text or r_text == "":  # "" is also the initial rate_text
                try:
                    rate = parse_rate(r_text)
                    rate_text = r_text
                except FieldError as exc:
                    yield Defect(number, "arrival_rate_in_s", str(exc))
                    rate_text, rate = "", -1.0

            if second >= 0:
                if first_second < 0:
                    first_second = second
                if second < last_second:
                    yield Defect(
                        number,
                        "seconds_since_start",
                        f"{second} goes back from {last_second} (line {last_second_line})",
                    )
                    second = -1  # neither timed nor counted
                else:
                    base = second * 1000 - elapsed
                    if base <= hi and base + 999 >= lo:
                        if base > lo:
                            lo = base
                        if base + 999 < hi:
                            hi = base + 999
                        alt = None
                    elif alt is not None and base <= alt[1] and base + 999 >= alt[0]:
                        # the line before was the first of a shifted timeline: follow it
                        lo, hi, alt = max(alt[0], base), min(alt[1], base + 999), None
                    else:
                        yield _timeline(number, second, lo + elapsed, hi + elapsed)
                        alt = (base, base + 999)
                        base = -_FAR  # a suspect second: later rows are not held to it
                    if second != last_second and base > -_FAR:
                        last_second, last_second_line = second, number

            if second >= 0 and rate >= 0:
                if second == cur_second:
                    cur_count += 1
                    if r_text != cur_rate_text and rate != cur_rate:
                        yield Defect(
                            number,
                            "arrival_rate_in_s",
                            f"{r_text} differs from {cur_rate_text} declared for second "
                            f"{second} on line {cur_line}; one rate per second",
                        )
                    if strict and waits.last >= 0:
                        if waits.low < 0 or waits.last < waits.low:
                            waits.low, waits.low_line = waits.last, waits.last_line
                        if waits.last > waits.high:
                            waits.high, waits.high_line = waits.last, waits.last_line
                else:
                    if cur_second >= 0:
                        yield from rates.close_second(
                            cur_second, cur_count, cur_rate, cur_line, waits, (second, rate)
                        )
                        if cur_count > peak_count:
                            peak_count = cur_count
                    cur_second, cur_count, cur_rate, cur_line = second, 1, rate, number
                    cur_rate_text = r_text
                    if rate > peak_rate:
                        peak_rate = rate
                    waits = SecondWaits()
                if strict:
                    waits.last, waits.last_line = wait, number

            if wait >= 0:
                elapsed += wait
            else:  # the time of the next row is unknown: start a new timeline there
                lo, hi, elapsed, alt = -_FAR, _FAR, 0, None

        if cur_second >= 0:
            # the last wait ends the scenario, maybe within the last second
            end_ms = lo + elapsed if lo > -_FAR else (cur_second + 1) * 1000
            covered = min(1.0, max(0.001, (end_ms - cur_second * 1000) / 1000))
            yield from rates.close_second(
                cur_second, cur_count, cur_rate, cur_line, waits, None, covered
            )
            peak_count = max(peak_count, cur_count)
        yield from rates.finish()
        summary.rows = n_rows
        summary.first_second = max(first_second, 0)
        # the end is the last invite plus its wait; (lo + elapsed) is that time in ms
        summary.duration_s = (lo + elapsed) / 1000 if lo > -_FAR else float(last_second + 1)
        summary.peak_rate = peak_rate
        summary.peak_second_invites = peak_count

    def _ten_minute(self, rows: Iterator[tuple[int, str]]) -> Iterator[Defect]:
        opts = self.options
        valid_ids = VALID_IDS
        partners = PARTNERS if opts.pairing_convention else None
        check_counts = opts.rate_check != "off"
        ids = self._ids
        summary = self.summary
        n_rows = 0
        last_ms, last_ms_line = -1, 0
        slot, slot_rows, slot_calls, slot_line, slot_calls_text = -1, 0, -1, 0, ""
        second, second_count, peak_count = -1, 0, 0
        peak_calls = 0
        for number, line in rows:
            parts = line.split(SEPARATOR)
            if len(parts) != 5:
                yield _field_count(number, parts, opts.max_line_length)
                continue
            slot_text, ms_text, calls_text, caller, callee = parts
            n_rows += 1
            caller_ok = caller in valid_ids
            callee_ok = callee in valid_ids
            ids.add(caller)
            ids.add(callee)
            if not caller_ok:
                yield Defect(number, "caller", id_problem(caller))
            if not callee_ok:
                yield Defect(number, "callee", id_problem(callee))
            if partners is not None and caller_ok and callee_ok and partners.get(caller) != callee:
                which = "caller" if caller not in partners else "callee"
                yield Defect(number, which, str(pairing_problem(caller, callee)))

            ms = _count_or_none(ms_text)
            if ms is None:
                yield _bad_field(number, "milliseconds", ms_text, "milliseconds")
            elif ms < last_ms:
                yield Defect(
                    number, "milliseconds", f"{ms} goes back from {last_ms} (line {last_ms_line})"
                )
                ms = None
            else:
                last_ms, last_ms_line = ms, number
                if ms // 1000 == second:
                    second_count += 1
                else:
                    peak_count = max(peak_count, second_count)
                    second, second_count = ms // 1000, 1

            row_slot = _count_or_none(slot_text)
            if row_slot is None:
                yield _bad_field(number, "ten_minute", slot_text, "ten-minute slots")
            elif ms is not None and row_slot != ms // TEN_MINUTES_MS:
                yield Defect(
                    number,
                    "ten_minute",
                    f"{row_slot}, but milliseconds {ms} fall in ten-minute slot "
                    f"{ms // TEN_MINUTES_MS}",
                )
                row_slot = ms // TEN_MINUTES_MS  # counted where its time puts it

            calls = _count_or_none(calls_text)
            if calls is None:
                yield _bad_field(number, "calls_in_ten_minutes", calls_text, "calls")
            elif calls > peak_calls:
                peak_calls = calls

            if row_slot is not None:
                if row_slot != slot:
                    if check_counts:
                        yield from _slot_count(slot, slot_rows, slot_calls, slot_line)
                    slot, slot_rows, slot_line = row_slot, 0, number
                    slot_calls, slot_calls_text = -1, ""
                slot_rows += 1
                if check_counts and calls is not None and calls != slot_calls:
                    if slot_calls < 0:
                        slot_calls, slot_calls_text = calls, calls_text
                    else:
                        yield Defect(
                            number,
                            "calls_in_ten_minutes",
                            f"{calls_text} differs from {slot_calls_text} declared for slot "
                            f"{slot} on line {slot_line}; one count per slot",
                        )
        if check_counts:
            yield from _slot_count(slot, slot_rows, slot_calls, slot_line)
        summary.rows = n_rows
        summary.first_second = 0
        summary.duration_s = max(last_ms, 0) / 1000
        summary.peak_rate = peak_calls / (TEN_MINUTES_MS / 1000)
        summary.peak_second_invites = max(peak_count, second_count)


def validate(
    lines: Iterable[str],
    *,
    pairing_convention: bool = True,
    rate_check: RateCheck = "statistical",
    z_limit: float = 6.0,
    max_line_length: int = MAX_LINE_LENGTH,
) -> Validation:
    """The defects of a scenario file (either format, told by its header), lazily.

    `lines` may keep their line ends. `rate_check`: "statistical" (Poisson or deterministic
    arrivals), "deterministic" (the paper's wait = 1000/lambda, checked per second and per
    wait) or "off". `pairing_convention=False` accepts any caller/callee pair of valid IDs.
    """
    options = ValidationOptions(pairing_convention, rate_check, z_limit, max_line_length)
    return Validation(lines, options)


# an over-long line is replaced by this (it has no separator, so it fails the field count)
_TOO_LONG = "\x00too long"


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _rows(lines: Iterator[str], start: int, max_length: int) -> Iterator[tuple[int, str]]:
    """Numbered rows without line ends; blank lines are passed on as "" only when a row
    follows them (blank lines at the end are fine), over-long ones as _TOO_LONG."""
    blanks: list[int] = []
    for number, raw in enumerate(lines, start):
        line = raw.rstrip("\r\n")
        if len(line) > max_length:
            line = _TOO_LONG
        elif not line or line.isspace():
            blanks.append(number)
            continue
        if blanks:
            for blank in blanks:
                yield blank, ""
            blanks.clear()
        yield number, line


def _guess_format(line: str) -> ScenarioFormat:
    parts = line.split(SEPARATOR)
    if len(parts) == 5 and parts[3] in VALID_IDS and parts[0] not in VALID_IDS:
        return ScenarioFormat.TEN_MINUTE
    return ScenarioFormat.MAIN


def _field_count(number: int, parts: list[str], max_length: int) -> Defect:
    if parts == [""]:
        return Defect(number, "row", "empty line")
    if parts == [_TOO_LONG]:
        return Defect(number, "row", f"is longer than {max_length} characters")
    return Defect(number, "row", f"has {len(parts)} fields separated by ';', not 5")


def _bad_field(number: int, name: str, text: str, unit: str) -> Defect:
    try:
        parse_count(text, unit)
    except FieldError as exc:
        return Defect(number, name, str(exc))
    return Defect(number, name, f"{text!r} is not a whole number of {unit}")


def _count_or_none(text: str) -> int | None:
    if len(text) < _FAST_DIGITS and text.isdigit() and text.isascii():
        return int(text)
    try:
        return parse_count(text)
    except FieldError:
        return None


def _timeline(number: int, second: int, low_ms: int, high_ms: int) -> Defect:
    low, high = low_ms // 1000, high_ms // 1000
    where = f"second {low}" if low == high else f"seconds {low}-{high}"
    return Defect(
        number,
        "seconds_since_start",
        f"{second}, but the waits of the rows before put this invite in {where}",
    )


def _slot_count(slot: int, rows: int, calls: int, line: int) -> Iterator[Defect]:
    if slot >= 0 and calls >= 0 and rows != calls:
        yield Defect(
            line,
            "calls_in_ten_minutes",
            f"slot {slot} declares {calls} calls but has {rows} rows",
        )
