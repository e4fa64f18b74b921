"""Numbers in fields: too large for the testbed's times and counts, or missing, they are a
defect of their field (int() refused more than 4300 digits with ValueError, a sum of huge waits
overflowed a float, and an empty first rate went unnoticed)."""

import pytest

from scenario_csv import HEADERS, FieldError, ScenarioError, ScenarioFormat, read_main, validate
from scenario_csv.fields import MAX_COUNT, parse_count

MAIN = HEADERS[ScenarioFormat.MAIN] + "\n"
TEN = HEADERS[ScenarioFormat.TEN_MINUTE] + "\n"


def test_parse_count_bounds_the_number_before_converting_it():
    assert parse_count("0" * 40 + "17") == 17
    assert parse_count(str(MAX_COUNT)) == MAX_COUNT
    with pytest.raises(FieldError, match=f"exceeds {MAX_COUNT}"):
        parse_count(str(MAX_COUNT + 1))
    with pytest.raises(FieldError, match=rf"'99999+'\.\.\. exceeds {MAX_COUNT}"):
        parse_count("9" * 5000)


def test_the_reader_names_the_field_of_a_5000_digit_wait():
    lines = [MAIN, f"0000;0100;{'9' * 5000};0;1\n"]
    with pytest.raises(ScenarioError, match=r"s\.csv: line 2: wait_before_next_in_ms: .* exceeds"):
        list(read_main(lines, "s.csv"))


def test_the_validator_reports_huge_waits_and_times_instead_of_overflowing():
    huge = "9" * 400  # fits a line of 1000 characters; 10**400 ms overflowed the duration
    lines = [MAIN, f"0000;0100;{huge};0;1\n", f"0001;0101;{huge};{huge};1\n"]
    found = [(d.line, d.field) for d in validate(lines)]
    assert (2, "wait_before_next_in_ms") in found
    assert (3, "seconds_since_start") in found
    ten = [TEN, f"0;{huge};1;0000;0100\n"]
    assert [(d.line, d.field) for d in validate(ten)] == [(2, "milliseconds")]


def test_leading_zeros_are_no_defect():
    lines = [MAIN, f"0000;0100;{'0' * 30}1000;0;1\n", "0001;0101;1000;1;1\n"]
    assert list(validate(lines)) == []


def test_an_empty_rate_on_the_first_row_is_a_defect():
    """Found by the long fuzz run: the empty text was taken for the rate already parsed."""
    lines = [MAIN, "0000;0100;500;0;\n", "0200;0300;500;0;2\n"]
    assert [(d.line, d.field) for d in validate(lines)] == [(2, "arrival_rate_in_s")]
    with pytest.raises(ScenarioError, match="line 2: arrival_rate_in_s: '' is not a number"):
        list(read_main(lines))
