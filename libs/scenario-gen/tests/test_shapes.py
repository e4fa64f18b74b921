import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scenario_gen.errors import ShapeError
from scenario_gen.scenario import build_shape
from scenario_gen.shapes import RateShape
from scenario_gen.spec import RampShape, StepShape, TableShape


@st.composite
def tables(draw, max_rate=200.0):
    n = draw(st.integers(1, 6))
    gaps = draw(st.lists(st.floats(0.5, 200), min_size=n, max_size=n))
    times = np.cumsum([0.0, *gaps[:-1]])
    rates = draw(st.lists(st.floats(0, max_rate), min_size=n, max_size=n))
    interpolate = draw(st.sampled_from(["hold", "linear"]))
    duration = float(times[-1]) + draw(st.floats(0.5, 200))
    return RateShape.from_points(times.tolist(), rates, interpolate, duration)


def _numeric_integral(shape: RateShape, t: float) -> tuple[float, float]:
    """Midpoint rule, and its error bound (a jump of the rate costs at most one cell)."""
    grid = np.linspace(0, t, 200_001)
    cells = np.diff(grid)
    value = float(np.sum(shape.rate((grid[:-1] + grid[1:]) / 2) * cells))
    return value, 2 * shape.peak * (t / 200_000) * len(shape.starts) + 1e-9


@pytest.mark.slow
@given(tables())
def test_cumulative_is_the_integral_of_the_rate(shape):
    for t in np.linspace(0, shape.duration_s, 5):
        expected, error = _numeric_integral(shape, float(t))
        assert shape.cumulative(t) == pytest.approx(expected, rel=1e-6, abs=error)
    assert shape.total == pytest.approx(float(shape.cumulative(shape.duration_s)))
    assert np.all(np.diff(shape.cumulative(np.linspace(0, shape.duration_s, 1000))) >= -1e-9)


@given(tables(), st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=20))
def test_inverse_undoes_the_cumulative(shape, fractions):
    u = np.asarray(fractions) * shape.total
    t = shape.inverse(u)
    assert np.all((t >= 0) & (t <= shape.duration_s))
    np.testing.assert_allclose(shape.cumulative(t), u, rtol=1e-9, atol=1e-6)


@given(tables())
def test_second_rates_are_the_mean_over_each_second(shape):
    seconds = np.arange(int(shape.duration_s))
    if len(seconds) == 0:
        return
    means = shape.second_rates(seconds)
    for s in seconds[:: max(1, len(seconds) // 5)]:
        grid = np.linspace(s, s + 1, 2001)
        numeric = np.mean(shape.rate((grid[:-1] + grid[1:]) / 2))
        # midpoint rule: a jump inside the second costs at most one cell of 1/2000 s
        assert means[s] == pytest.approx(numeric, rel=1e-6, abs=shape.peak / 1000 + 1e-9)


def test_the_papers_step_scenario():
    shape = build_shape(StepShape())
    assert shape.duration_s == 1800
    at = np.array([0, 299.999, 300, 600, 900, 1200, 1500, 1799.9])
    np.testing.assert_allclose(shape.rate(at), [12, 12, 18, 24, 30, 36, 42, 42])
    assert shape.total == 300 * (12 + 18 + 24 + 30 + 36 + 42)
    assert shape.peak == 42


def test_ramp_and_table_shapes():
    ramp = build_shape(RampShape(from_rate=0, to_rate=10, duration_s=100))
    np.testing.assert_allclose(ramp.rate([0, 50, 99.999]), [0, 5, 10], atol=1e-3)
    assert ramp.total == pytest.approx(500)
    table = build_shape(TableShape(points=[(0, 5), (10, 0), (20, 5)], duration_s=30))
    np.testing.assert_allclose(table.rate([5, 15, 25]), [5, 0, 5])
    # no invite falls where the rate is 0: the inverse jumps over [10, 20)
    t = table.inverse(np.array([49.999, 50.0, 50.001]))
    assert t[0] < 10
    assert t[1] == pytest.approx(20)
    assert t[2] > 20
    linear = build_shape(TableShape(points=[(0, 0), (10, 10)], interpolate="linear"))
    assert linear.duration_s == 10
    assert linear.total == pytest.approx(50)


def test_bad_shapes_are_refused():
    with pytest.raises(ShapeError, match="duration"):
        RateShape.from_points([0], [1], "hold", 0)
    with pytest.raises(ShapeError, match="no point before"):
        RateShape.from_points([10], [1], "hold", 5)
    with pytest.raises(ValueError, match="last step's rate"):
        StepShape(start_rate=5, step_rate=-2, steps=4)
    with pytest.raises(ValueError, match="increasing"):
        TableShape(points=[(0, 1), (0, 2)])
