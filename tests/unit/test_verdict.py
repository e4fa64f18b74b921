"""The comparison's answer: which runs met P0 and the cheapest of them."""

from __future__ import annotations

from testbed.experiment.verdict import judge


def _run(share: float, failed: int, cost: float) -> dict[str, float]:
    return {"p99_violation_share": share, "calls_failed": failed, "proxy_seconds": cost}


def test_the_cheapest_run_that_met_p0_is_the_answer() -> None:
    verdict = judge(
        [
            ("static-1", [_run(0.40, 120, 150.0)]),
            ("plan-5", [_run(0.0, 0, 750.0)]),
            ("qos", [_run(0.02, 0, 420.0)]),
        ]
    )
    assert [j.met for j in verdict.judged] == [False, True, True]
    assert verdict.cheapest_met is not None
    assert verdict.cheapest_met.label == "qos"
    lines = verdict.lines()
    assert lines[0].startswith("static-1: missed P0 (40.0% of windows over P0, 120 failed")
    assert (
        lines[-1]
        == "answer: qos met P0 at the lowest cost, 420 proxy-seconds (44% less than plan-5)"
    )


def test_a_failed_call_or_too_many_windows_over_misses_p0() -> None:
    verdict = judge(
        [("failed", [_run(0.0, 1, 10.0)]), ("over", [_run(0.06, 0, 20.0)])],
        allowed_share=0.05,
    )
    assert [j.met for j in verdict.judged] == [False, False]
    assert verdict.cheapest_met is None
    assert verdict.lines()[-1].startswith("answer: none met P0 (at most 5% of windows over")


def test_a_group_is_judged_on_its_means_and_missing_figures_never_meet() -> None:
    verdict = judge(
        [
            ("group", [_run(0.0, 0, 100.0), _run(0.08, 0, 300.0)]),  # mean share 0.04
            ("empty", [{}]),
        ]
    )
    group, empty = verdict.judged
    assert group.met
    assert group.share_over == 0.04
    assert group.proxy_seconds == 200.0
    assert not empty.met
    assert "- of windows" in verdict.lines()[1]
