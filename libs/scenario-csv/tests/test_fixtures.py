"""Each fixture holds known defects; the validator must report exactly those lines and fields."""

from pathlib import Path

import pytest

from scenario_csv import validate

FIXTURES = Path(__file__).parent / "fixtures"

# fixture -> the (line, field) pairs it must produce, and nothing else
EXPECTED = {
    "valid-main.csv": [],
    "valid-ten-minute.csv": [],
    # the paper's bug: pod 7 written as 700, 701, ... instead of 0700, 0701, ...
    "padding-700.csv": [(line, "callee") for line in range(2, 14)],
    "ten-minute-700.csv": [(6, "caller"), (6, "callee")],
    "odd-caller.csv": [(5, "caller")],
    "wrong-callee.csv": [(8, "callee")],
    "id-not-digits.csv": [(17, "caller")],
    "bad-header.csv": [(1, "header")],
    "field-count.csv": [(6, "row")],
    "blank-line.csv": [(7, "row")],
    "negative-wait.csv": [(11, "wait_before_next_in_ms")],
    "seconds-back.csv": [(14, "seconds_since_start")],
    "seconds-vs-waits.csv": [(10, "seconds_since_start")],
    "rate-changes-in-second.csv": [(13, "arrival_rate_in_s")],
    "rate-not-a-number.csv": [(4, "arrival_rate_in_s")],
    "rate-far-from-declared.csv": [(2, "arrival_rate_in_s")],
    "ten-minute-count.csv": [(10, "calls_in_ten_minutes")],
    "ten-minute-slot.csv": [(5, "ten_minute")],
    "ten-minute-ms-back.csv": [(9, "milliseconds")],
}


def test_every_fixture_has_expectations():
    assert {p.name for p in FIXTURES.glob("*.csv")} == set(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_fixture_defects_have_the_right_lines_and_fields(name, expected):
    with (FIXTURES / name).open() as lines:
        run = validate(lines)
        found = [(d.line, d.field) for d in run]
    assert found == expected
    assert run.summary.valid == (not expected)
    assert run.summary.defects == len(expected)


def test_padding_defect_names_the_padded_id():
    with (FIXTURES / "padding-700.csv").open() as lines:
        first = next(validate(lines))
    assert str(first) == (
        "line 2: callee: '700' is not zero-padded: phone IDs have 4 digits PPNN, "
        "so pod 07 phone 00 is '0700'"
    )


def test_deterministic_check_also_blames_the_wrong_wait():
    with (FIXTURES / "seconds-vs-waits.csv").open() as lines:
        found = {(d.line, d.field) for d in validate(lines, rate_check="deterministic")}
    assert found == {(10, "seconds_since_start"), (9, "wait_before_next_in_ms")}


def test_deterministic_check_flags_every_second_of_a_wrong_rate():
    with (FIXTURES / "rate-far-from-declared.csv").open() as lines:
        defects = list(validate(lines, rate_check="deterministic"))
    per_second = [d for d in defects if "declares 20/s" in d.message]
    assert [d.line for d in per_second] == list(range(2, 22, 2))


def test_convention_checks_can_be_switched_off():
    for name in ("odd-caller.csv", "wrong-callee.csv"):
        with (FIXTURES / name).open() as lines:
            assert list(validate(lines, pairing_convention=False)) == []
    with (FIXTURES / "rate-far-from-declared.csv").open() as lines:
        assert list(validate(lines, rate_check="off")) == []
    with (FIXTURES / "ten-minute-count.csv").open() as lines:
        assert list(validate(lines, rate_check="off")) == []
    # padding is part of the format, not a convention
    with (FIXTURES / "padding-700.csv").open() as lines:
        assert len(list(validate(lines, pairing_convention=False, rate_check="off"))) == 12
