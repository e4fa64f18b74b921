"""Every generated file passes the validator, in both formats and with both processes."""

import io

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from scenario_csv import (
    PARTNERS,
    ScenarioFormat,
    main_to_ten_minute,
    read_main,
    validate,
    write_ten_minute,
)
from scenario_gen.scenario import Scenario
from scenario_gen.spec import GenerateRequest, StepShape

MAX_RATE = 150.0


def _rate(top):
    """0 or a rate of at least 0.01/s (no denormal floats)."""
    return st.one_of(st.just(0.0), st.floats(0.01, top))


def _constant():
    return st.fixed_dictionaries(
        {
            "kind": st.just("constant"),
            "rate": st.floats(0.05, MAX_RATE),
            "duration_s": st.floats(1, 300),
        }
    )


def _step():
    return st.fixed_dictionaries(
        {
            "kind": st.just("step"),
            "start_rate": st.floats(0.5, 60),
            "step_rate": st.floats(0, 20),
            "step_every_s": st.floats(1, 60),
            "steps": st.integers(1, 5),
        }
    )


def _ramp():
    return st.fixed_dictionaries(
        {
            "kind": st.just("ramp"),
            "from_rate": _rate(MAX_RATE),
            "to_rate": _rate(MAX_RATE),
            "duration_s": st.floats(1, 200),
        }
    ).filter(lambda r: r["from_rate"] + r["to_rate"] > 0)


@st.composite
def _table(draw):
    n = draw(st.integers(1, 5))
    times = np.cumsum([0.0, *draw(st.lists(st.floats(0.5, 60), min_size=n - 1, max_size=n - 1))])
    rates = draw(
        st.lists(st.one_of(st.just(0.0), st.floats(0.05, MAX_RATE)), min_size=n, max_size=n).filter(
            any
        )
    )
    return {
        "kind": "table",
        "points": [[float(t), r] for t, r in zip(times, rates, strict=True)],
        "interpolate": draw(st.sampled_from(["hold", "linear"])),
        "duration_s": float(times[-1]) + draw(st.floats(0.5, 60)),
    }


@st.composite
def requests(draw, shapes=None):
    pods = draw(st.integers(2, 20))
    first_pod = 2 * draw(st.integers(0, (100 - pods) // 2))
    return GenerateRequest.model_validate(
        {
            "shape": draw(
                shapes if shapes is not None else st.one_of(_constant(), _step(), _ramp(), _table())
            ),
            "arrivals": draw(st.sampled_from(["deterministic", "poisson"])),
            "seed": draw(st.integers(0, 2**32 - 1)),
            "pods": pods,
            "first_pod": first_pod,
            "phones_per_pod": draw(st.integers(1, 100)),
            "format": draw(st.sampled_from(list(ScenarioFormat))),
        }
    )


def _text(request):
    return "".join(Scenario(request).text())


@given(requests())
def test_every_generated_file_passes_validate(request):
    lines = _text(request).splitlines(True)
    run = validate(lines)
    assert [str(d) for d in run] == []
    summary = run.summary
    assert summary.format is request.format
    assert summary.rows == len(lines) - 1
    caller_pods = range(request.first_pod, request.first_pod + request.pods - 1, 2)
    assert set(summary.pods) <= {p for c in caller_pods for p in (c, c + 1)}
    assert summary.phones_per_pod <= request.phones_per_pod


def _gentle_ramp():
    """Ramps whose rate changes by at most 0.02 invites/s per second (the strict check
    assumes lambda changes little within a second)."""
    return st.fixed_dictionaries(
        {
            "kind": st.just("ramp"),
            "from_rate": _rate(60),
            "to_rate": _rate(60),
            "duration_s": st.floats(1, 3000),
        }
    ).filter(
        lambda r: (
            r["from_rate"] + r["to_rate"] > 0
            and abs(r["to_rate"] - r["from_rate"]) <= 0.02 * r["duration_s"]
        )
    )


def _whole_second_step():
    """Steps at whole seconds: the strict check reads a file's per-second rates as lambda, which
    a step inside a second breaks (that second's average understates the new rate)."""
    return _step().map(lambda s: {**s, "step_every_s": float(round(s["step_every_s"]))})


@pytest.mark.slow
@given(requests(shapes=st.one_of(_constant(), _whole_second_step(), _gentle_ramp())))
def test_deterministic_files_pass_the_strict_check(request):
    request = request.model_copy(update={"arrivals": "deterministic"})
    run = validate(_text(request).splitlines(True), rate_check="deterministic")
    assert [str(d) for d in run] == []


@pytest.mark.slow
@given(requests())
def test_ten_minute_output_is_the_conversion_of_the_main_output(request):
    main = request.model_copy(update={"format": ScenarioFormat.MAIN})
    ten = request.model_copy(update={"format": ScenarioFormat.TEN_MINUTE})
    # the main format places the first invite only to the second; shapes that start at a
    # rate of 0 can put it within a second, which the conversion cannot know
    first_ms = int(next(Scenario(main).schedule()).at_ms[0])
    assume(first_ms % 1000 == 0)
    converted = io.StringIO()
    write_ten_minute(main_to_ten_minute(read_main(_text(main).splitlines(True))), converted)
    assert converted.getvalue() == _text(ten)


@pytest.mark.slow
@given(requests())
def test_rows_follow_the_id_convention_round_robin(request):
    rows = list(Scenario(request).rows())
    pairs = Scenario(request).plan.pairs()
    for k, row in enumerate(rows[:500]):
        assert (row.caller, row.callee) == pairs[k % len(pairs)]
        assert PARTNERS[row.caller] == row.callee
    main = request.model_copy(update={"format": ScenarioFormat.MAIN})
    assert list(read_main(_text(main).splitlines(True))) == rows


def test_a_step_up_after_a_second_without_invites_passes_the_strict_check():
    # found by hypothesis: 0.5/s places invites at 0 and 2.0 s; the step to 2.5/s at 2.5 s puts
    # the next one at 2.8 s, 800 ms later, in a second whose average rate (1.5/s) alone would
    # allow at most 681 ms
    request = GenerateRequest(
        shape=StepShape(kind="step", start_rate=0.5, step_rate=2.0, step_every_s=2.5, steps=2),
        arrivals="deterministic",
        pods=2,
        phones_per_pod=1,
    )
    run = validate(_text(request).splitlines(True), rate_check="deterministic")
    assert [str(d) for d in run] == []
