import io
import tracemalloc
from collections.abc import Iterator

import pytest

from scenario_csv import HEADERS, Defect, ScenarioFormat, text_lines, validate

MAIN = HEADERS[ScenarioFormat.MAIN]


def _constant(rate: int, seconds: int, pods: int = 100) -> Iterator[str]:
    """A deterministic constant-rate file, generated lazily."""
    yield MAIN + "\n"
    wait = 1000 // rate
    for k in range(rate * seconds):
        pod = 2 * (k % (pods // 2))
        phone = (k // (pods // 2)) % 100
        yield f"{pod:02d}{phone:02d};{pod + 1:02d}{phone:02d};{wait};{k // rate};{rate}\n"


def test_defect_renders_line_field_message():
    assert str(Defect(12, "caller", "bad")) == "line 12: caller: bad"


def test_summary_of_a_valid_file():
    run = validate(_constant(rate=20, seconds=20, pods=10))
    assert list(run) == []
    summary = run.summary
    assert summary.valid
    assert summary.format is ScenarioFormat.MAIN
    assert summary.rows == 400
    assert summary.duration_s == 20.0
    assert summary.peak_rate == 20
    assert summary.mean_rate == 20
    assert summary.peak_second_invites == 20
    assert summary.pods == list(range(10))
    assert summary.pods_needed == 10
    assert summary.phones_per_pod == 80  # 400 invites over 5 caller pods: phones 0..79


def test_ten_minute_summary():
    lines = [HEADERS[ScenarioFormat.TEN_MINUTE]] + [
        f"{ms // 600_000};{ms};300;0400;0500" for ms in range(0, 1_200_000, 2000)
    ]
    run = validate(lines)
    assert list(run) == []
    assert run.summary.format is ScenarioFormat.TEN_MINUTE
    assert run.summary.rows == 600
    assert run.summary.peak_rate == 0.5
    assert run.summary.pods == [4, 5]
    assert run.summary.pods_needed == 6


def test_empty_file_and_header_only():
    assert [(d.line, d.field) for d in validate([])] == [(1, "header")]
    assert [(d.line, d.field) for d in validate([MAIN + "\n"])] == [(2, "row")]


def test_blank_lines_at_the_end_are_ignored_but_not_in_between():
    lines = list(_constant(2, 3))
    assert list(validate([*lines, "\n", "\r\n"])) == []
    with_gap = [*lines[:3], "\n", *lines[3:]]
    assert [(d.line, d.field) for d in validate(with_gap)] == [(4, "row")]


def test_crlf_line_ends_and_a_bom_are_accepted():
    lines = [line.replace("\n", "\r\n") for line in _constant(2, 3)]
    lines[0] = "\ufeff" + lines[0]
    assert list(validate(lines)) == []


def test_unreadable_bytes_and_over_long_lines_are_defects_of_their_line():
    data = "".join(_constant(2, 3)).encode()
    data = data.replace(b"0000;0100", b"00\xff0;0100", 1)  # line 2
    data += b"0000;0100;500;3;2" + b"7" * 5000 + b"\n"  # line 8
    found = [(d.line, d.field) for d in validate(text_lines(io.BytesIO(data)))]
    assert (2, "caller") in found
    assert (8, "row") in found


def test_a_shifted_timeline_is_reported_once():
    lines = list(_constant(2, 10))
    # line 6 waits 1500 instead of 500: every later row is a second late by the waits
    parts = lines[5].split(";")
    parts[2] = "1500"
    lines[5] = ";".join(parts)
    found = [(d.line, d.field) for d in validate(lines)]
    assert found == [(7, "seconds_since_start")]


def test_a_single_wrong_second_is_reported_once():
    lines = list(_constant(2, 10))
    parts = lines[7].split(";")  # line 8, second 3
    parts[3] = "4"
    lines[7] = ";".join(parts)
    assert [(d.line, d.field) for d in validate(lines)] == [(8, "seconds_since_start")]


@pytest.mark.parametrize("rate", [0.25, 1, 7, 50])
def test_statistical_check_catches_a_rate_off_by_a_quarter(rate):
    """Declared rate x, realized 0.75 x over an hour: far beyond Poisson noise."""
    lines = [MAIN + "\n"]
    realized = rate * 0.75
    wait = round(1000 / realized)
    t = 0
    while t < 3_600_000:
        lines.append(f"0000;0100;{wait};{t // 1000};{rate:g}\n")
        t += wait
    found = {d.field for d in validate(lines)}
    assert found == {"arrival_rate_in_s"}


def test_low_rate_with_empty_seconds_passes():
    """One invite every 10 s: 9 of 10 seconds declare nothing; the check bridges them."""
    lines = [MAIN + "\n"] + [f"0000;0100;10000;{10 * k};0.1\n" for k in range(2000)]
    assert list(validate(lines)) == []
    assert list(validate(lines, rate_check="deterministic")) == []


def test_a_zero_rate_section_is_not_a_defect():
    lines = [MAIN + "\n"]
    lines += [f"0000;0100;100;{k // 10};10\n" for k in range(600)]  # 60 s at 10/s
    lines[-1] = lines[-1].replace(";100;", ";60100;")  # then nothing for a minute
    lines += [f"0000;0100;100;{120 + k // 10};10\n" for k in range(600)]
    assert list(validate(lines)) == []
    assert list(validate(lines, rate_check="deterministic")) == []


@pytest.mark.slow
def test_validation_is_lazy_and_memory_is_bounded():
    tracemalloc.start()
    try:
        run = validate(_constant(rate=50, seconds=4000))  # 200k rows, never held in memory
        assert list(run) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert run.summary.rows == 200_000
    assert peak < 2_000_000  # bytes: a few per-second counters and sets of <= 10000 IDs


def test_unparseable_numbers_name_their_field():
    lines = [MAIN, "0000;0100;1e3;0;1", "0000;0100;1000;x;1", "0000;0100;1000;2;-1"]
    found = [(d.line, d.field) for d in validate(lines, rate_check="off")]
    assert found == [
        (2, "wait_before_next_in_ms"),
        (3, "seconds_since_start"),
        (4, "arrival_rate_in_s"),
    ]
