"""Fuzz target: the scenario CSV validator and readers, on arbitrary and mutated files.

Seeds: the fixtures (valid and defective, both formats). Whatever the text, `validate` only
yields `Defect`s naming a line and a field (it never raises), the readers raise nothing but
`ScenarioError`, and a file the validator finds valid is read whole by the readers.
"""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from scenario_csv import (
    MAIN_FIELDS,
    TEN_MINUTE_FIELDS,
    Defect,
    ScenarioError,
    read_main,
    read_ten_minute,
    text_lines,
    validate,
)

FUZZ = settings.get_profile("fuzz")
FIXTURES = Path(__file__).parent / "fixtures"
SEEDS = [p.read_text().splitlines(keepends=True) for p in sorted(FIXTURES.glob("*.csv"))]
FIELDS = {*MAIN_FIELDS, *TEN_MINUTE_FIELDS, "header", "row"}
# field texts that str methods, int() and float() disagree on, or that overflow
HOSTILE = [
    "²",
    "\u0663",
    "-1",
    "-0",
    "1e308",
    "1e309",
    "inf",
    "nan",
    "0x10",
    "1_000",
    " 1",
    "9" * 999,
    "9" * 5000,
    "",
    ";",
    "\ufeff",
    "\x00",
    "4.9e-324",
]


@st.composite
def mutated(draw: st.DrawFn) -> list[str]:
    lines = list(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["field", "line", "drop", "repeat", "swap"]))
        if kind == "field":
            fields = lines[index].rstrip("\r\n").split(";")
            position = draw(st.integers(0, len(fields) - 1))
            fields[position] = draw(st.sampled_from(HOSTILE) | st.text(max_size=12))
            lines[index] = ";".join(fields) + "\n"
        elif kind == "line":
            lines[index] = draw(st.text(max_size=60)) + draw(st.sampled_from(["\n", "\r\n", ""]))
        elif kind == "drop" and len(lines) > 1:
            del lines[index]
        elif kind == "repeat":
            lines.insert(index, lines[index])
        else:
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
    return lines


def _validate_everything(lines: list[str]) -> None:
    for options in ({}, {"rate_check": "deterministic"}, {"pairing_convention": False}):
        run = validate(iter(lines), **options)
        defects = list(run)
        assert all(isinstance(d, Defect) for d in defects)
        assert all(d.line >= 1 and d.field in FIELDS and d.message for d in defects)
        assert run.summary.defects == len(defects)
    for reader in (read_main, read_ten_minute):
        rows, refused = _read(reader, lines)
        if refused is not None:
            assert str(refused).startswith("fuzz.csv: line ")
            assert refused.defect.field in FIELDS
            assert not run.summary.valid, f"valid, yet {reader.__name__} refused it: {refused}"
        elif run.summary.valid and reader is read_main:
            assert len(rows) == run.summary.rows


def _read(reader, lines: list[str]) -> tuple[list[object], ScenarioError | None]:
    """The rows a reader yields, or the ScenarioError it raised (any other error escapes)."""
    try:
        return list(reader(iter(lines), "fuzz.csv")), None
    except ScenarioError as exc:
        return [], exc


@FUZZ
@given(st.lists(st.text(max_size=80), max_size=20))
def test_fuzz_arbitrary_lines_give_defects_never_exceptions(lines):
    _validate_everything(lines)


@FUZZ
@given(mutated())
@example(["caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s\n",
          "0000;0100;500;0;1e308\n", "0001;0101;500;0;1e308\n"])  # fmt: skip
@example(["caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s\n",
          f"0000;0100;{'9' * 5000};0;2\n"])  # fmt: skip
@example(
    [
        "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s\n",
        "0000;0100;500;0;\n",
        "0200;0300;500;0;2\n",
    ]
)  # fmt: skip  (found by the long run)
def test_fuzz_mutated_fixtures_give_defects_never_exceptions(lines):
    _validate_everything(lines)


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes_through_text_lines(data):
    lines = list(text_lines(io.BytesIO(data)))
    assert all(len(line) <= 1001 for line in lines)
    _validate_everything(lines)
