"""The sans-I/O core with made-up answers and times: no clock, no sleeps, no network."""

import pytest

from policy_controller.decision import Answers, DecisionCore, PodNames
from scaling_policy.predictive import PredictivePolicy, PredictiveSettings

NAME = "tb-sip-proxy"
LEAD = 50.0  # start-up 15 + ready 0 + scrape 5 + half the window 15 + sync 15: the defaults


def _core(knee=10.0, *, kind="statefulsets", dry_run=False, low=1, high=10):
    settings = PredictiveSettings(p0_ms=500, knee_per_proxy=knee, lead_time_s=LEAD)
    policy = PredictivePolicy(settings, low, high)
    return DecisionCore(policy, PodNames(NAME, kind), dry_run=dry_run)


def _answers(rate, ordinals, *, p99=0.05, cpu=0.01, names=None):
    pods = names if names is not None else [f"{NAME}-{i}" for i in ordinals]
    return Answers(
        cpu_cores={p: cpu for p in pods},
        p99_s={p: p99 for p in pods},
        p99_all_s=p99,
        invite_rate=rate,
    )


def _sync(core, now, spec, answers):
    core.observe(now, answers)
    return core.decide(now, spec)


def test_a_rising_rate_scales_up_before_the_rate_itself_needs_it():
    core = _core()  # 0.8 x 10 = 8 invites/s planned per proxy
    core.observe(0, _answers(0, [0]))
    first = _sync(core, 100, 1, _answers(2, [0]))
    second = _sync(core, 115, 1, _answers(4, [0]))
    third = _sync(core, 130, 1, _answers(6, [0]))
    assert [d.action for d in (first, second)] == ["hold", "hold"]
    # 6/s fits one proxy; the trend (+4/s per 30 s) says 12.7/s in a lead time: two
    assert (third.action, third.current, third.desired, third.patch) == ("up", 1, 2, True)
    assert third.reason.startswith("predictive: up, 6.0/s, 12.7/s in 50 s")
    assert third.predicted_invite_rate == pytest.approx(6 + 4 / 30 * LEAD)
    assert (third.invite_rate, third.lead_time_s, third.knee_invites_per_second) == (6, LEAD, 10)


def test_a_steady_rate_holds():
    core = _core()
    core.observe(0, _answers(12, [0, 1]))
    decisions = [_sync(core, 100 + 15 * i, 2, _answers(12, [0, 1])) for i in range(6)]
    assert {(d.action, d.desired, d.patch) for d in decisions} == {("hold", 2, False)}
    # settled proxies: their p99 counts (50 ms)
    assert decisions[-1].settled_p99_s == pytest.approx(0.05)
    assert (decisions[-1].ready, decisions[-1].pending) == (2, 0)


def test_scale_in_waits_for_the_rate_to_stay_low_and_goes_one_at_a_time():
    core = _core()
    core.observe(0, _answers(20, [0, 1, 2]))
    spec, actions = 3, {}
    rate = {100: 20.0}
    for now in range(100, 300, 15):
        decision = _sync(core, now, spec, _answers(rate.get(now, 4.0), [0, 1, 2]))
        actions[now] = (decision.action, decision.desired)
        spec = decision.desired  # the patch took effect; pod 2 still reports for a while
    # 4/s needs one proxy, but 20/s was seen within two lead times (100 s): hold until then
    assert {actions[t] for t in range(100, 205, 15)} == {("hold", 3)}
    assert actions[205] == ("down", 2)
    # and the next only a lead time after that change
    assert {actions[t] for t in (220, 235, 250)} == {("hold", 2)}
    assert actions[265] == ("down", 1)


def test_no_scale_in_while_a_proxy_is_pending():
    core = _core()
    core.observe(0, _answers(4, [0, 1]))
    decision = _sync(core, 100, 3, _answers(4, [0, 1]))  # pod 2 asked for, not seen
    assert (decision.action, decision.pending) == ("hold", 1)


def test_a_p99_over_p0_adds_a_proxy_whatever_the_rate():
    core = _core()
    core.observe(0, _answers(4, [0, 1]))
    decision = _sync(core, 100, 2, _answers(4, [0, 1], p99=0.8))
    assert (decision.action, decision.desired) == ("up", 3)
    assert decision.settled_p99_s == pytest.approx(0.8)


def test_a_dry_run_decides_but_does_not_patch():
    core = _core(dry_run=True)
    core.observe(0, _answers(30, [0]))
    decision = _sync(core, 100, 1, _answers(30, [0]))
    assert (decision.action, decision.desired, decision.patch) == ("up", 4, False)


def test_the_bounds_hold_whatever_the_scale_says():
    core = _core(low=1, high=10)
    # no answer yet: the policy holds, the bounds lift a scale of 0 to the minimum
    decision = core.decide(0, 0)
    assert (decision.action, decision.desired, decision.reason) == (
        "up",
        1,
        "predictive: no rate yet",
    )
    assert decision.invite_rate is None
    core.observe(10, _answers(4, []))
    assert core.decide(10, 12).desired == 10


def test_busy_proxies_measure_a_lower_knee_from_their_cpu():
    settings = PredictiveSettings(
        p0_ms=500, knee_per_proxy=10, lead_time_s=LEAD, cpu_limit_cores=0.010
    )
    core = DecisionCore(PredictivePolicy(settings, 1, 10), PodNames(NAME, "statefulsets"))
    core.observe(0, _answers(4, [0], cpu=0.008))
    # settled (seen 100 s ago), 4/s at 8m of a 10m limit: 4.5/s fit in 90% of it
    decision = _sync(core, 100, 1, _answers(4, [0], cpu=0.008))
    assert decision.cpu_knee_invites_per_second == pytest.approx(4.5)
    assert decision.knee_invites_per_second == pytest.approx(4.5)
    # 4/s needs ceil(4 / (0.8 x 4.5)) = 2 proxies at the measured knee (1 at the hint)
    assert (decision.action, decision.desired) == ("up", 2)
    assert "(cpu 4.5)" in decision.reason


def test_readiness_from_first_seen_series():
    core = _core()
    core.observe(10, _answers(1, [0]))
    core.observe(20, _answers(1, [0, 1]))
    readiness = core.readiness(3)
    assert readiness.ready_since == {f"{NAME}-0": 10, f"{NAME}-1": 20}
    assert readiness.pending == frozenset({f"{NAME}-2"})
    # ordinals at or past spec.replicas are not the pool's
    assert core.readiness(1).ready_since == {f"{NAME}-0": 10}
    assert core.readiness(1).pending == frozenset()


def test_pods_that_disappear_are_forgotten():
    core = _core()
    core.observe(10, _answers(1, [0, 1]))
    core.observe(20, _answers(1, [0]))
    assert core.readiness(2).pending == frozenset({f"{NAME}-1"})
    core.observe(30, _answers(1, [0, 1]))
    assert core.readiness(2).ready_since == {f"{NAME}-0": 10, f"{NAME}-1": 30}


def test_pods_of_other_names_are_ignored():
    core = _core()
    names = [
        f"{NAME}-0",
        f"{NAME}-canary-0",
        f"{NAME}-01",
        f"{NAME}-x",
        "other-0",
        "tb-sip-loadb-0",
        f"{NAME}",
    ]
    view = core.observe(10, _answers(1, [], names=names))
    assert view.pods == frozenset({f"{NAME}-0"})
    assert set(view.cpu_cores) == set(view.p99_s) == {f"{NAME}-0"}
    assert (view.source, view.time, view.invite_rate) == ("prometheus", 10, 1)


def test_a_pod_past_the_scale_is_not_ready_and_its_p99_is_left_out():
    core = _core()
    core.observe(0, _answers(4, [0, 1, 2]))
    # pod 2 is past spec.replicas (being removed, draining): its p99, and the pool's that it
    # drags up, say nothing of the pool the scale asks for; the settled ready pods' do
    answers = _answers(4, [0, 1, 2], p99=3.0)
    answers.p99_s.update({f"{NAME}-0": 0.05, f"{NAME}-1": 0.05})
    decision = _sync(core, 100, 2, answers)
    assert (decision.ready, decision.pending) == (2, 0)
    assert decision.action != "up"
    assert decision.settled_p99_s == pytest.approx(0.05)


def test_deployment_pods_have_no_ordinals():
    core = _core(kind="deployments")
    names = [f"{NAME}-7d9f8b6c4-abcde", f"{NAME}-7d9f8b6c4-fghij", f"{NAME}-0", "other-x-y"]
    core.observe(10, _answers(1, [], names=names[:1]))
    view = core.observe(20, _answers(1, [], names=names))
    assert view.pods == frozenset(names[:2])
    three = core.readiness(3)
    assert three.ready_since == {names[0]: 10, names[1]: 20}
    assert len(three.pending) == 1
    # more pods than asked for (one going away): the longest seen count
    assert core.readiness(1).ready_since == {names[0]: 10}


def test_the_recorded_run_replayed_through_the_core(recorded):
    """The real answers of a local run's Prometheus (a step load 5 -> 20 invites/s, its pods
    sip-proxy-0..3 appearing as the local autoscaler added them), its P0 and knee hint, one
    decision per recorded time; the scale follows each decision."""
    from policy_controller.prometheus import by_label, parse_answer, single

    def answer(t, name):
        response = recorded.load("prometheus", f"t{t:03d}-{name}")["response"]
        return parse_answer(response["status"], response["body"])

    settings = PredictiveSettings(p0_ms=1000, knee_per_proxy=6, lead_time_s=66)
    core = DecisionCore(PredictivePolicy(settings, 1, 10), PodNames("sip-proxy", "statefulsets"))
    spec, seen = 1, {}
    for t in (0, 30, 150, 165, 180, 195, 300, 540, 700):
        answers = Answers(
            cpu_cores=by_label(answer(t, "cpu"), "pod"),
            p99_s=by_label(answer(t, "p99-by-pod"), "pod"),
            p99_all_s=single(answer(t, "p99")),
            invite_rate=single(answer(t, "invite-rate")),
        )
        decision = _sync(core, t, spec, answers)
        seen[t] = (decision.action, decision.desired, decision.ready, decision.pending)
        spec = decision.desired
    # the rate's rise (5 -> 8/s, over the 4.8/s one proxy is planned for) asks for a second
    # proxy before the p99 breaks P0; the trend counts only scrapes since the rate appeared
    assert seen[150] == ("up", 2, 1, 0)
    # the new pod is pending until its CPU series appears (sip-proxy-1 by 195 s)
    assert [seen[t][2:] for t in (165, 180, 195)] == [(1, 1), (1, 1), (2, 0)]
    # nothing more while it starts, though the one settled proxy's p99 (1.5 s) is over P0
    assert {seen[t][:2] for t in (165, 180)} == {("hold", 2)}
    # at 195 s the new pod serves, but the settled proxy's p99 still describes the pool before
    # it (the change was 45 s ago, under the 66 s lead time): no second proxy on its word
    assert seen[195][:2] == ("hold", 2)
    # later a settled p99 over P0 adds a proxy at each decision: the recorded run's own proxies
    # (its pods, its p99) did not follow these decisions, so the breach goes on here
    assert [seen[t][:2] for t in (300, 540)] == [("up", 3), ("up", 4)]
    assert seen[700] == ("hold", 4, 4, 0)
    assert "down" not in {action for action, *_ in seen.values()}
