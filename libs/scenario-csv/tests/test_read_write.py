import io
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scenario_csv import (
    PARTNERS,
    ScenarioError,
    ScenarioRow,
    TenMinuteRow,
    main_to_ten_minute,
    read_main,
    read_ten_minute,
    ten_minute_to_main,
    validate,
    write_main,
    write_ten_minute,
)

CALLERS = sorted(PARTNERS)


@st.composite
def schedules(draw):
    """A main-format file as csvgen writes it: first invite at 0, waits in ms, the rate of a
    row's second declared on it."""
    waits = draw(st.lists(st.integers(0, 400_000), min_size=1, max_size=200))
    callers = draw(st.lists(st.sampled_from(CALLERS), min_size=len(waits), max_size=len(waits)))
    rates = draw(st.lists(st.sampled_from([0.5, 1, 12, 42.25]), min_size=1, max_size=5))
    rows, at = [], 0
    for wait, caller in zip(waits, callers, strict=True):
        second = at // 1000
        rate = rates[second % len(rates)]
        rows.append(ScenarioRow(caller, PARTNERS[caller], wait, second, rate))
        at += wait
    return rows


def _main_text(rows):
    out = io.StringIO()
    write_main(rows, out)
    return out.getvalue()


def _ten_text(rows):
    out = io.StringIO()
    write_ten_minute(rows, out)
    return out.getvalue()


@given(schedules())
def test_main_rows_survive_writing_and_reading(rows):
    text = _main_text(rows)
    assert list(read_main(text.splitlines(True))) == rows


@given(schedules())
def test_main_to_ten_minute_and_back_keeps_the_schedule(rows):
    ten_text = _ten_text(main_to_ten_minute(rows))
    ten = list(read_ten_minute(ten_text.splitlines(True)))
    # invite times are the cumulative waits
    times = list(itertools.accumulate((r.wait_before_next_in_ms for r in rows[:-1]), initial=0))
    assert [r.milliseconds for r in ten] == times
    assert [r.ten_minute for r in ten] == [t // 600_000 for t in times]
    for row in ten:  # each slot declares its own number of rows
        assert row.calls_in_ten_minutes == sum(1 for t in times if t // 600_000 == row.ten_minute)
    back = list(read_main(ten_text.splitlines(True)))  # read_main converts the variant
    assert [(r.caller, r.callee, r.seconds_since_start) for r in back] == [
        (r.caller, r.callee, r.seconds_since_start) for r in rows
    ]
    assert [r.wait_before_next_in_ms for r in back[:-1]] == [
        r.wait_before_next_in_ms for r in rows[:-1]
    ]
    assert back[-1].wait_before_next_in_ms == 0  # the variant has no wait after the last
    assert [r.arrival_rate_in_s for r in back] == [
        r.calls_in_ten_minutes / 600 for r in ten
    ]  # the per-second rate becomes the slot's mean
    # and the variant is reproduced exactly from the converted main file
    assert _ten_text(main_to_ten_minute(back)) == ten_text


@given(schedules())
def test_both_formats_of_a_schedule_validate(rows):
    """The pairing and timing of converted files hold (their rates are slot means, so the
    per-second rate check is off here)."""
    for text in (_main_text(rows), _ten_text(main_to_ten_minute(rows))):
        run = validate(text.splitlines(True), rate_check="off")
        assert [str(d) for d in run] == []
        assert run.summary.rows == len(rows)


def test_ten_minute_to_main_waits_are_differences():
    ten = [TenMinuteRow(0, 1000, 600, "0400", "0500"), TenMinuteRow(0, 2500, 600, "0401", "0501")]
    assert list(ten_minute_to_main(ten)) == [
        ScenarioRow("0400", "0500", 1500, 1, 1.0),
        ScenarioRow("0401", "0501", 0, 2, 1.0),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: header: the file is empty"),
        ("a;b\n", "line 1: header: expected"),
        (
            "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s\n"
            "4600;4700;1000;0;1\n4600;700;1000;1;1\n",
            "line 3: callee: '700' is not zero-padded",
        ),
        (
            "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s\n"
            "4600;4700;1000\n",
            "line 2: row: has 3 fields",
        ),
        (
            "ten_minute;milliseconds;calls_in_ten_minutes;caller;callee\n"
            "0;5000;1;4600;4700\n0;4000;1;4600;4700\n",
            "line 3: milliseconds: 4000 goes back",
        ),
        (
            "ten_minute;milliseconds;calls_in_ten_minutes;caller;callee\nx;5000;1;4600;4700\n",
            "line 2: ten_minute: 'x' is not a whole number",
        ),
    ],
)
def test_readers_stop_at_the_first_defect_naming_source_line_and_field(text, message):
    with pytest.raises(ScenarioError) as caught:
        list(read_main(text.splitlines(True), source="s.csv"))
    assert str(caught.value).startswith("s.csv: " + message)
    assert caught.value.defect.line == int(message.split()[1].rstrip(":"))
