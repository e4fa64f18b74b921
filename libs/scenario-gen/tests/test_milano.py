import datetime as dt
from collections import defaultdict

import numpy as np
import pytest

from scenario_csv import validate
from scenario_gen.errors import MilanoError
from scenario_gen.milano import add_calls, day_series, load_calls, milano_shape
from scenario_gen.scenario import Scenario, build_shape
from scenario_gen.spec import GenerateRequest, MilanoShape
from scenario_gen.synthetic import synthetic_lines

DAY = dt.date(2013, 11, 4)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    """The synthetic day as a file (csvgen ships the same lines as its packaged data)."""
    path = tmp_path_factory.mktemp("milano") / "milano-synthetic-day.tsv"
    path.write_text("".join(synthetic_lines()), encoding="ascii")
    return path


def _by_hand(fixture, squares=None):
    """Call-in + call-out per slot, summed the obvious way."""
    calls: defaultdict[int, float] = defaultdict(float)
    for line in fixture.read_text().splitlines():
        f = line.split("\t")
        if squares is None or int(f[0]) in squares:
            calls[int(f[1])] += float(f[5] or 0) + float(f[6] or 0)
    return dict(calls)


def test_the_synthetic_day_is_reproducible():
    assert synthetic_lines() == synthetic_lines()


def test_the_fixture_has_the_features_the_reader_must_handle():
    rows = [line.split("\t") for line in synthetic_lines()]
    assert all(len(r) == 8 for r in rows)
    per_square_slot = defaultdict(set)
    for r in rows:
        per_square_slot[(r[0], r[1])].add(r[2])
    assert max(len(c) for c in per_square_slot.values()) >= 3  # several country codes
    assert any(r[5] == "" and r[6] == "" for r in rows)  # empty fields
    assert len({r[0] for r in rows}) == 3
    assert len({r[1] for r in rows}) == 144


def test_calls_are_summed_over_countries_and_squares(fixture):
    calls = load_calls([fixture], None)
    expected = _by_hand(fixture)
    assert calls.keys() == expected.keys()
    for slot, value in expected.items():
        assert calls[slot] == pytest.approx(value)
    only = load_calls([fixture], [4259])
    for slot, value in _by_hand(fixture, {4259}).items():
        assert only[slot] == pytest.approx(value)
    assert sum(only.values()) < sum(calls.values())


def test_days_are_local_days_of_144_slots(fixture):
    calls = load_calls([fixture], None)
    days, series = day_series(calls, None, utc_offset_hours=1)
    assert days == [DAY]
    assert len(series) == 144
    assert series[0] == pytest.approx(_by_hand(fixture)[1_383_519_600_000])
    # in UTC the same rows straddle two days; missing slots count as no calls
    days_utc, series_utc = day_series(calls, None, utc_offset_hours=0)
    assert days_utc == [dt.date(2013, 11, 3), DAY]
    assert len(series_utc) == 288
    assert np.count_nonzero(series_utc) == 144
    with pytest.raises(
        MilanoError, match=r"day 2013-11-05 is not in the Milano files \(they hold 2013-11-04\)"
    ):
        day_series(calls, [dt.date(2013, 11, 5)], 1)


def test_daily_shape_is_plausible(fixture):
    _, series = day_series(load_calls([fixture], None), None, 1)
    hourly = series.reshape(24, 6).sum(axis=1)
    assert hourly[3:5].max() < 0.2 * hourly.max()  # night low
    assert 9 <= int(np.argmax(hourly)) <= 19  # daytime peak


@pytest.mark.parametrize("interpolate", ["hold", "linear"])
def test_scaling_compression_and_interpolation(fixture, interpolate):
    _, series = day_series(load_calls([fixture], None), None, 1)
    shape = milano_shape(series, peak_rate=42, compress=8, interpolate=interpolate)
    assert shape.duration_s == 86400 / 8  # the paper's 3-hour day
    assert shape.peak == pytest.approx(42)
    slot_s = 600 / 8
    centres = (np.arange(144) + 0.5) * slot_s
    np.testing.assert_allclose(shape.rate(centres), series * 42 / series.max())
    if interpolate == "hold":
        np.testing.assert_allclose(
            shape.rate(centres - slot_s / 2 + 1e-6), series * 42 / series.max()
        )
    else:  # halfway between centres: the mean of the two slots
        middle = shape.rate(centres[:-1] + slot_s / 2)
        np.testing.assert_allclose(middle, (series[:-1] + series[1:]) / 2 * 42 / series.max())


def test_a_generated_milano_scenario_validates(fixture):
    spec = MilanoShape(files=[str(fixture)], squares=[4259, 5060], days=[DAY], compress=8)
    for arrivals in ("deterministic", "poisson"):
        request = GenerateRequest(shape=spec, arrivals=arrivals, pods=4)
        lines = "".join(Scenario(request).text()).splitlines(True)
        run = validate(
            lines, rate_check="deterministic" if arrivals == "deterministic" else "statistical"
        )
        assert [str(d) for d in run] == []
        assert run.summary.duration_s == 10800
        assert run.summary.peak_rate == pytest.approx(42, abs=0.5)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("4259\t1383519600000\t39\t1\t1\t1\n", "line 1: row: has 6 tab-separated fields"),
        ("x\t1383519600000\t39\t1\t1\t1\t1\t1\n", "line 1: square id: 'x' is not a whole number"),
        (
            "4259\t1383519600001\t39\t1\t1\t1\t1\t1\n",
            "line 1: interval start: 1383519600001 is not the start",
        ),
        ("4259\t1383519600000\t39\t1\t1\tabc\t1\t1\n", "line 1: call-in: 'abc' is not a number"),
        ("4259\t1383519600000\t39\t1\t1\t1\t-2\t1\n", "line 1: call-out: '-2' is not an activity"),
    ],
)
def test_malformed_rows_name_file_line_and_field(line, message):
    with pytest.raises(MilanoError) as caught:
        add_calls(["4259\t1383519600000\t39\t\t\t\t\t\n", line], "day.tsv", None, {})
    assert str(caught.value).startswith("day.tsv: " + message.replace("line 1", "line 2"))


def test_empty_selections_and_missing_files_are_refused(fixture, tmp_path):
    with pytest.raises(MilanoError, match="no rows for the chosen squares 1, 2"):
        load_calls([fixture], [1, 2])
    with pytest.raises(MilanoError, match="cannot read"):
        load_calls([tmp_path / "missing.tsv"], None)
    quiet = tmp_path / "quiet.tsv"
    quiet.write_text("4259\t1383519600000\t39\t1\t1\t\t\t1\n")
    with pytest.raises(MilanoError, match="no calls"):
        build_shape(MilanoShape(files=[str(quiet)]))
