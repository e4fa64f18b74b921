"""The predictive policy on synthetic metric views: it scales ahead of a rising rate by the lead
time it computes, leaves warming proxies' p99 out, corrects its knee from the p99, and never
removes a proxy it would add back within its lead time."""

from __future__ import annotations

from typing import Any

import pytest

from scaling_policy.policy import Readiness
from scaling_policy.predictive import PredictivePolicy, PredictiveSettings, lead_time
from scaling_policy.view import MetricView
from testbed.autoscale.factory import build_policy
from testbed.autoscale.spec import AutoscaleSpec


def view(
    t: float, rate: float, p99_ms: float | None = 1.0, pods: int = 2, **p99s: float
) -> MetricView:
    names = [f"sip-proxy-{i}" for i in range(pods)]
    per = {n: (p99s.get(n.replace("-", "_"), p99_ms) or 0) / 1000 for n in names}
    return MetricView(
        time=t,
        cpu_cores=dict.fromkeys(names, 0.01),
        p99_s=dict(per),
        p99_all_s=None if p99_ms is None else max([p99_ms, *p99s.values()]) / 1000,
        invite_rate=rate,
        pods=frozenset(names),
    )


def ready(n: int, since: float = -1000.0, **late: float) -> Readiness:
    return Readiness({f"sip-proxy-{i}": late.get(f"sip_proxy_{i}", since) for i in range(n)})


def policy(**knobs: Any) -> PredictivePolicy:
    settings: dict[str, Any] = {"p0_ms": 1000.0, "knee_per_proxy": 10.0, "lead_time_s": 60.0}
    return PredictivePolicy(PredictiveSettings(**{**settings, **knobs}), 1, 10)


def test_the_lead_time_is_start_up_plus_the_metric_delay_plus_a_sync():
    # 5 s start-up, 1 s to serve, a 30 s scrape, half a 30 s window, a 15 s sync
    assert lead_time(5, 1, 30, 30, 15) == 66


def test_a_rising_rate_gets_its_proxies_a_lead_time_ahead():
    p = policy()
    # 0.1 invites/s more every second: at 7/s the rate in 60 s is 13/s, more than the
    # 8/s (0.8 x 10) one proxy is planned for
    decisions = [p.recommend(t, 1, view(t, 1 + 0.1 * t, pods=1), ready(1)) for t in (0, 30, 60)]
    assert [d.desired for d in decisions] == [1, 1, 2]
    assert "up" in decisions[-1].reason
    assert p.predicted_rate == pytest.approx(13.0)
    # a flat rate of 7/s needs no second proxy
    flat = policy()
    assert [flat.recommend(t, 1, view(t, 7, pods=1), ready(1)).desired for t in (0, 30, 60)] == [
        1,
        1,
        1,
    ]


def test_a_warming_proxy_s_p99_is_left_out():
    p = policy(knee_per_proxy=8.0)
    # sip-proxy-1 serves since t=90: at t=100 it shows 1.8 s, which says nothing of the knee
    d = p.recommend(100, 2, view(100, 10, 2.0, sip_proxy_1=1800), ready(2, sip_proxy_1=90))
    assert d.desired == 2
    assert p.knee == 8
    assert p.p99_ms == pytest.approx(2.0)
    # the same from a settled proxy: a breach at 5/s per proxy, the knee cut below it
    settled = policy(knee_per_proxy=8.0)
    d = settled.recommend(100, 2, view(100, 10, 2.0, sip_proxy_1=1800), ready(2))
    assert settled.knee == pytest.approx(4.5)
    assert d.desired == 3  # over P0: one more at least; 10/s at 0.8 x 4.5 per proxy wants 3
    # one breach at a low rate per proxy does not cut the knee below half the hint
    odd = policy(knee_per_proxy=8.0)
    odd.recommend(100, 2, view(100, 2, 900), ready(2))
    assert odd.knee == 4.0


def test_calm_at_the_target_raises_the_knee_up_to_its_bound():
    p = policy(knee_max_factor=1.2)
    for i in range(10):
        p.recommend(30 * i, 1, view(30 * i, 8.0 * p.knee / 10, pods=1), ready(1))
    assert p.knee == pytest.approx(12.0)  # 1.2 x the hint, not more
    idle = policy()
    for i in range(10):  # calm but far under the target: no evidence about the knee
        idle.recommend(30 * i, 1, view(30 * i, 2.0, pods=1), ready(1))
    assert idle.knee == 10


def test_no_proxy_removed_that_the_lead_time_would_bring_back():
    p = policy()
    # 3 proxies for 20/s; the rate falls to 9/s at t=60: 2 proxies would do (16/s planned)
    assert p.recommend(0, 3, view(0, 20, pods=3), ready(3)).desired == 3
    for t in (30, 60, 90, 120):
        d = p.recommend(t, 3, view(t, 9, pods=3), ready(3))
        # the highest rate of the last two lead times (20/s at t=0) still needs 3
        assert d.desired == 3, t
    d = p.recommend(150, 3, view(150, 9, pods=3), ready(3))
    assert d.desired == 2  # 20/s is two lead times ago: one fewer carries 9/s
    d = p.recommend(180, 2, view(180, 5, pods=2), ready(2))
    assert d.desired == 2  # and the next one only a lead time after that change
    assert "hold" in d.reason


def test_no_scale_in_while_proxies_start_or_p99_is_high():
    p = policy()
    d = p.recommend(0, 3, view(0, 2, pods=2), ready(2))  # 3 asked for, 2 serve
    assert d.desired == 3
    high = policy()
    d = high.recommend(0, 3, view(0, 2, 700, pods=3), ready(3))
    assert d.desired == 3


def test_the_autoscale_section_builds_it_with_the_computed_lead_time():
    spec = AutoscaleSpec.model_validate(
        {
            "policy": "predictive",
            "predictive": {"knee_per_proxy": 6},
            "startup_delay_s": 5,
            "scrape_interval_s": 30,
            "metric_window_s": 30,
            "sync_period_s": 15,
        }
    )
    built = build_policy(spec, 1000, 10)
    assert isinstance(built, PredictivePolicy)
    assert built.s.lead_time_s == 66
    assert built.s.cpu_limit_cores == pytest.approx(0.010)  # the proxies' 10m limit
    unlimited = build_policy(spec, 1000, None)
    assert isinstance(unlimited, PredictivePolicy)
    assert unlimited.s.cpu_limit_cores is None
    off = AutoscaleSpec.model_validate(
        {"policy": "predictive", "predictive": {"knee_per_proxy": 6, "cpu_knee": False}}
    )
    built_off = build_policy(off, 1000, 10)
    assert isinstance(built_off, PredictivePolicy)
    assert built_off.s.cpu_limit_cores is None
    with pytest.raises(ValueError, match=r"predictive needs predictive\.knee_per_proxy"):
        AutoscaleSpec.model_validate({"policy": "predictive"})
    with pytest.raises(ValueError, match="calm_fraction must be below breach_fraction"):
        AutoscaleSpec.model_validate(
            {"policy": "predictive", "predictive": {"knee_per_proxy": 6, "calm_fraction": 0.7}}
        )


def test_the_trend_is_fitted_over_scrapes_whatever_their_jitter():
    # scrapes 30.01 s apart: a 60 s window would hold two of them and see no trend
    p = policy()
    times = [30.01 * i for i in range(3)]
    for t in times:
        p.recommend(t, 1, view(t, 5 + 0.1 * t, pods=1), ready(1))
    assert p.predicted_rate == pytest.approx(5 + 0.1 * times[-1] + 0.1 * 60)


def busy(t: float, rate: float, pods: int, cores: float, p99_s: float = 0.001) -> MetricView:
    names = [f"sip-proxy-{i}" for i in range(pods)]
    return MetricView(
        time=t,
        cpu_cores=dict.fromkeys(names, cores),
        p99_s=dict.fromkeys(names, p99_s),
        p99_all_s=p99_s,
        invite_rate=rate,
        pods=frozenset(names),
    )


def test_the_cpu_measures_a_knee_below_a_wrong_hint_before_any_breach():
    # a 10m proxy: 1.6 mCPU of background and 1 ms of CPU per invite, so 90% of the limit
    # (9m) is reached at 7.4 invites/s; the hint says 12
    p = policy(knee_per_proxy=12.0, target_share=0.9, cpu_limit_cores=0.010)
    desired = []
    for i, rate in enumerate([2.0, 4.0, 6.0, 8.0]):
        t = 300.0 * i  # slow steps: the trend adds little over the 60 s lead time
        # a p99 of 400 ms: neither calm (< 300) nor a breach (> 600), so the p99 corrects nothing
        d = p.recommend(t, 1, busy(t, rate, 1, 0.0016 + 0.001 * rate, p99_s=0.4), ready(1))
        desired.append(d.desired)
    assert p.cpu_knee == pytest.approx(7.4)
    assert p.effective_knee == pytest.approx(7.4)
    # nothing learned from the p99
    assert p.knee == 12.0
    assert p.cpu_trust == 1.0
    # 8/s is over 0.9 x 7.4 for one proxy: a second one, as the HPA at 90% would ask
    assert desired == [1, 1, 1, 2]
    assert "cpu 7.4" in p.recommend(1200, 2, busy(1200, 8.0, 2, 0.0056), ready(2)).reason


def test_the_p99_corrects_the_cpu_s_knee_up_when_calm_under_load_and_down_on_a_breach():
    # the line says 7.4/s at 90% of 10m; the proxies stay calm (1 ms) while carrying 7/s each,
    # over calm_load_share (0.8) of that knee: each scrape raises the CPU's knee by 5%
    p = policy(knee_per_proxy=12.0, target_share=1.0, cpu_limit_cores=0.010, cpu_trust_max=1.5)
    for i, rate in enumerate([2.0, 4.0]):
        p.recommend(300.0 * i, 1, busy(300.0 * i, rate, 1, 0.0016 + 0.001 * rate), ready(1))
    assert p.cpu_trust == 1.0  # calm at 4/s (under 0.8 x 7.4) says nothing about the knee
    for i in range(3):
        t = 600.0 + 30 * i
        p.recommend(t, 2, busy(t, 14.0, 2, 0.0086), ready(2))
    assert p.cpu_knee == pytest.approx(7.4)
    assert p.cpu_trust == pytest.approx(1.05**3)
    assert p.effective_knee == pytest.approx(7.4 * 1.05**3)
    # nor past cpu_trust_max (1.5 here) times the line's knee
    for i in range(30):
        t = 700.0 + 30 * i
        p.recommend(t, 2, busy(t, 2 * 0.8 * p.effective_knee, 2, 0.0076), ready(2))
    assert p.cpu_trust == pytest.approx(1.5)
    # a breach at 7/s per proxy: the CPU's knee is cut to 7 x 0.9 (the learned one too)
    p.recommend(2000, 2, busy(2000, 14.0, 2, 0.0086, p99_s=0.8), ready(2))
    assert p.effective_knee == pytest.approx(7 * 0.9)
    assert p.knee == pytest.approx(7 * 0.9)


def test_calm_at_the_planned_load_raises_a_knee_that_a_breach_cut():
    # a real run (14:23, target_share 0.8): a breach at 8/s on one proxy cut the knee to 7.2,
    # so the policy planned 0.8 x 7.2 = 5.8/s per proxy; calm counted only from 0.8 x 7.2
    # per proxy, a load it never let a proxy reach, and the knee stayed 7.2 to the end
    p = policy(knee_per_proxy=12.0, target_share=0.8)
    p.recommend(0.0, 1, view(0.0, 8.0, p99_ms=700.0, pods=1), ready(1))
    assert p.knee == pytest.approx(7.2)
    # three proxies carry 16.5/s (5.5/s each, over 0.8 of the planned 5.8/s), the p99 calm:
    # the knee grows until 0.8 of its plan passes the load calm was seen at (5.5 / 0.64)
    for i in range(5):
        t = 600.0 + 30 * i
        assert p.recommend(t, 3, view(t, 16.5, pods=3), ready(3)).desired == 3
    assert p.knee == pytest.approx(7.2 * 1.05**4)  # 0.64 x 8.3 < 5.5 < 0.64 x 8.75
    assert 0.8 * 0.8 * p.knee > 5.5
    # calm under that share of the plan (2 proxies' worth of rate on 4) says nothing
    knee = p.knee
    for i in range(3):
        t = 800.0 + 30 * i
        p.recommend(t, 4, view(t, 8.0, pods=4), ready(4))
    assert p.knee == knee


def test_a_throttled_proxy_is_off_the_line_and_a_lone_busy_one_bounds_the_knee():
    p = policy(knee_per_proxy=12.0, cpu_limit_cores=0.010)
    # one rate only, the proxy at its limit: no line; CPU per invite gives 8 x 0.9 = 7.2
    p.recommend(0, 1, busy(0, 8.0, 1, 0.010), ready(1))
    assert p.cpu_knee == pytest.approx(7.2)
    # idle: nothing read (the background would pass for the cost of the invites)
    idle = policy(knee_per_proxy=12.0, cpu_limit_cores=0.010)
    idle.recommend(0, 1, busy(0, 1.0, 1, 0.0026), ready(1))
    assert idle.cpu_knee is None
    assert idle.effective_knee == 12.0
    # a warming proxy's CPU is not read either
    warm = policy(knee_per_proxy=12.0, cpu_limit_cores=0.010)
    warm.recommend(100, 1, busy(100, 8.0, 1, 0.010), ready(1, since=90.0))
    assert warm.cpu_knee is None


def test_a_knee_above_the_hint_is_not_taken_from_the_cpu():
    # a fast machine: 0.5 ms per invite puts 90% of 10m at 14.8/s; the learned knee (10) stays
    p = policy(cpu_limit_cores=0.010)
    for i, rate in enumerate([2.0, 4.0, 6.0]):
        p.recommend(30.0 * i, 1, busy(30.0 * i, rate, 1, 0.0016 + 0.0005 * rate), ready(1))
    assert p.cpu_knee == pytest.approx(14.8)
    assert p.effective_knee == 10.0


def test_a_rate_window_filling_up_is_no_trend():
    # the load starts at 5/s; the 30 s rate window shows 0, 1.7, 3.3, 5/s on 10 s scrapes
    filling = [(0.0, 0.0), (10.0, 5 / 3), (20.0, 10 / 3), (30.0, 5.0), (40.0, 5.0)]
    naive = policy(knee_per_proxy=6.0)
    aware = policy(knee_per_proxy=6.0, trend_after_s=30.0)
    for t, rate in filling[:4]:
        up = naive.recommend(t, 1, view(t, rate, pods=1), ready(1))
        held = aware.recommend(t, 1, view(t, rate, pods=1), ready(1))
    assert up.desired >= 2  # 5/s + its "trend" over 60 s: 15/s, for a 4.8/s proxy
    assert held.desired == 1  # 5/s alone fits one proxy (the knee rose while calm)
    assert aware.predicted_rate == pytest.approx(5.0)
    # a rise once the window is full is a trend again
    for t, rate in [(50.0, 6.0), (60.0, 7.0), (70.0, 8.0)]:
        d = aware.recommend(t, 1, view(t, rate, pods=1), ready(1))
    assert aware.predicted_rate == pytest.approx(8.0 + 0.1 * 60)
    assert d.desired >= 2


def test_the_autoscale_section_s_window_is_the_trend_s_delay():
    spec = AutoscaleSpec.model_validate(
        {"policy": "predictive", "predictive": {"knee_per_proxy": 6}, "metric_window_s": 45}
    )
    built = build_policy(spec, 1000, 10)
    assert isinstance(built, PredictivePolicy)
    assert built.s.trend_after_s == 45


def test_the_metrics_of_the_pool_before_a_change_teach_nothing_for_a_lead_time():
    # the real run (2026-12-04 12:39): one 10m proxy swamped at 8/s (p99 2.5 s) asked for a
    # second and, the p99 still over P0, a third; 15 s later the window still showed the first
    # proxy's 6.8 s while three shared the 8/s, and the knee was cut to 8/3 x 0.9
    p = policy(knee_per_proxy=12.0, target_share=1.0, cpu_limit_cores=0.010)
    p.recommend(0, 1, busy(0, 5.0, 1, 0.0074, p99_s=0.06), ready(1))
    up = p.recommend(30, 1, busy(30, 8.0, 1, 0.0100, p99_s=2.49), ready(1))
    assert up.desired == 2
    # that breach of a settled pool is a lesson: one proxy serves less than 8/s
    assert p.effective_knee == pytest.approx(8 * 0.9)
    # 15 s on: the same stale view, the second proxy serving; no second "over P0" proxy
    again = p.recommend(45, 2, busy(45, 8.0, 1, 0.0100, p99_s=2.49), ready(2, sip_proxy_1=40.0))
    assert again.desired == 2
    # a new scrape, still within the lead time (60 s): the old proxy's backlog is no lesson
    stale = busy(60, 8.0, 2, 0.0065, p99_s=6.8)
    assert p.recommend(60, 2, stale, ready(2, sip_proxy_1=40.0)).desired == 2
    assert p.effective_knee == pytest.approx(8 * 0.9)
    # a lead time after the change the pool's own p99 counts again: calm at 4/s each
    later = p.recommend(95, 2, busy(95, 8.0, 2, 0.0060, p99_s=0.05), ready(2, sip_proxy_1=40.0))
    assert later.desired == 2
    # and a breach then is a lesson about 4/s per proxy (the learned knee stops at half the
    # hint, the CPU's at half its line)
    p.recommend(125, 2, busy(125, 8.0, 2, 0.0099, p99_s=0.9), ready(2, sip_proxy_1=40.0))
    assert p.effective_knee < 8 * 0.9
    assert p.knee == pytest.approx(0.5 * 12.0)


def test_at_the_maximum_asking_for_more_is_no_change():
    # ten proxies at 6/s each, over a knee of 5: the policy asks for more at each sync, which
    # changes nothing, so the pool's calm p99 goes on teaching the knee at every scrape
    p = policy(knee_per_proxy=5.0, target_share=1.0)
    for t in (0, 30):
        assert p.recommend(t, 10, view(t, 60.0, pods=10), ready(10)).desired == 10
    assert p.knee == pytest.approx(5 * 1.05**2)


def test_calm_lifts_the_cpu_s_knee_only_a_little_past_the_limit():
    # the default cap (1.1): a real run whose calm lifted the factor to 1.47 kept two proxies
    # for 19/s and broke P0 at the 20/s step
    p = policy(knee_per_proxy=12.0, target_share=1.0, cpu_limit_cores=0.010)
    for i, rate in enumerate([2.0, 4.0]):
        p.recommend(300.0 * i, 1, busy(300.0 * i, rate, 1, 0.0016 + 0.001 * rate), ready(1))
    for i in range(30):
        t = 600.0 + 30 * i
        p.recommend(t, 2, busy(t, 14.0, 2, 0.0086), ready(2))
    assert p.cpu_knee == pytest.approx(7.4)
    assert p.cpu_trust == pytest.approx(1.1)
    assert p.effective_knee == pytest.approx(7.4 * 1.1)
    # the learned knee (no CPU line) still grows to knee_max_factor: the cap is the CPU's alone
    assert p.knee == pytest.approx(12.0 * 1.5)


def test_a_cpu_trust_cap_under_1_is_refused():
    with pytest.raises(ValueError, match="cpu_trust_max"):
        policy(cpu_trust_max=0.9)
