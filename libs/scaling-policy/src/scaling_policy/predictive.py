"""The predictive QoS policy: proxies for the invite rate expected one lead time ahead, at a
per-proxy knee that the p99 response time corrects.

CPU-based HPA and the reactive QoS policy act after the fact: the HPA once the CPU has risen,
the QoS policy once the p99 has. A proxy that is asked for now serves only after its start-up,
and the metrics that asked for it were already a scrape interval and half a window old, so
both are late by that lead time on a rising load. This policy scales on the load balancer's
invite rate and its trend, projected over the lead time, which it computes from the settings
(start-up + ready delay + scrape interval + half the metric window + one sync period) rather
than having it tuned. The knee (the invites/s one proxy serves within P0) starts from a hint,
the benchmark's capacity at the proxies' CPU limit, and is corrected by what the p99 says:

- a breach (p99 above `breach_fraction` of P0) at some rate per proxy: the knee is below that
  rate, cut to it times `knee_cut`;
- calm (p99 below `calm_fraction` of P0) while each proxy carries at least `calm_load_share`
  of the load it is planned to carry (`target_share` of the knee): the knee is raised by
  `knee_raise`, up to `knee_max_factor` times the hint (and never cut below `knee_min_factor`
  times it). Measured against the plan, not the knee: the policy keeps each proxy under
  `target_share` of the knee, so a condition at or above that share could never hold and the
  knee, once cut, could only fall (a real run kept 7.2/s from one breach to its end, four
  proxies for 20/s where two served it).

Where the proxies' CPU limit is known (`cpu_limit_cores`), the knee is also measured, without
waiting for a breach: a line fitted to the settled proxies' CPU against their invites/s (a
background plus a cost per invite, from the unthrottled scrapes) says how many invites/s fit in
`cpu_ceiling` of the limit, and the knee used is the lower of that and the learned one. Until
the rates spread enough for a line, a busy proxy's CPU per invite gives a lower bound. A
hint above what the proxies really serve (a slower hour of a shared machine, a heavier message
mix than the benchmark's) is then corrected as soon as they are busy, as the CPU-based HPA
would see it, rather than after the p99 broke P0. The p99 corrects the CPU's knee as it does
the learned one (a factor, `cpu_trust`, raised on calm and cut on a breach): a proxy's CPU
per invite falls as it gets busier (work batched per wake-up), so a line fitted at lower rates
understates what it serves, and only the p99 says by how much. Calm lifts it only to
`cpu_trust_max`, a little past the limit: a calm p99 at 80% of the knee says nothing about
how far past the CPU's knee a proxy still serves, and a real run that let calm lift it to 1.47
(a knee of 13.7/s on a 9.3/s line) kept two proxies for 19/s and broke P0 at the 20/s step.

The p99 of a proxy that is starting, or has served for less than `settle_s`, is left out (a new
proxy under a CPU limit shows seconds of latency while it warms up, which says nothing about the
knee), as Kubernetes leaves unready pods out of the CPU average. For a lead time after a change
nothing is learned and a p99 over P0 adds no proxy: the metrics still describe the pool before
the change (a real run read the p99 of one proxy swamped at 8/s against the 2.7/s each of three
proxies had since, cut the knee to 1.2/s and asked for nine proxies).

Scale-in is guarded: a proxy is removed only when one fewer would still carry, at
`target_share` of the knee, the highest rate and the highest projection of the last
`scale_in_lead_times` lead times, and no sooner than a lead time after the last change: it
does not remove a proxy that a rise it has just seen would have it add back before a new one
could serve.

Sans-I/O like every policy of the testbed: views and times go in, a replica count and a
reason come out.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from scaling_policy.policy import Readiness, Recommendation, clamp, least_squares_slope
from scaling_policy.view import MetricView


@dataclass(frozen=True)
class PredictiveSettings:
    p0_ms: float
    knee_per_proxy: float  # invites/s one proxy serves within P0: the benchmark's, a hint
    lead_time_s: float  # computed by `lead_time` from the autoscaler's settings
    target_share: float = 0.8  # of the knee each proxy is planned to carry
    calm_fraction: float = 0.3  # p99 below this share of P0: calm
    breach_fraction: float = 0.6  # p99 above this share of P0: the knee is lower
    knee_raise: float = 0.05  # per calm sync near the target, the knee grows by this share
    knee_cut: float = 0.9  # on a breach the knee becomes the rate per proxy times this
    knee_max_factor: float = 1.5  # the knee never grows past this many times the hint
    knee_min_factor: float = 0.5  # nor falls below this many times it (one odd breach)
    # calm lifts the CPU's knee at most this many times (the p99 says the line understates a
    # busy proxy, not by how much)
    cpu_trust_max: float = 1.1
    # calm says something about the knee only while each proxy carries this share of its
    # planned load (target_share x knee)
    calm_load_share: float = 0.8
    settle_s: float = 30.0  # a proxy's p99 counts this long after it serves
    trend_points: int = 4  # the rate's trend is fitted over this many scrapes (at least 3)
    scale_in_lead_times: float = 2.0  # scale-in looks back this many lead times
    # the trend reads only scrapes this long after the rate rose from zero: while the rate
    # window fills, the averaged rate climbs to the load's level, which is no trend
    trend_after_s: float = 0.0
    cpu_limit_cores: float | None = None  # each proxy's CPU limit; None: no measured knee
    cpu_ceiling: float = 0.9  # of the limit a proxy may use at the knee (CFS throttles past it)
    cpu_min_share: float = 0.5  # no line yet: CPU per invite is read above this share only
    # (the idle background, counted per invite, would understate the knee)
    cpu_points: int = 120  # the (invites/s, cores) points the line is fitted to, newest kept
    cpu_spread: float = 0.25  # the line needs rates spread over this share of the highest


def lead_time(
    startup_delay_s: float,
    ready_delay_s: float,
    scrape_interval_s: float,
    metric_window_s: float,
    sync_period_s: float,
) -> float:
    """How far ahead a decision has to look: a proxy asked for now serves after its start-up
    (and the testbed's ready delay); the rate the decision read was up to a scrape interval old
    and averaged over a window (half of it late); and the decision itself waits for its sync."""
    return startup_delay_s + ready_delay_s + scrape_interval_s + metric_window_s / 2 + sync_period_s


class PredictivePolicy:
    name = "predictive"

    def __init__(
        self, settings: PredictiveSettings, min_replicas: int = 1, max_replicas: int = 20
    ) -> None:
        s = settings
        if s.knee_per_proxy <= 0 or not 0 < s.target_share <= 1:
            raise ValueError("the knee must be > 0 and target_share in (0, 1]")
        if not 0 < s.calm_fraction < s.breach_fraction:
            raise ValueError("calm_fraction must be above 0 and below breach_fraction")
        if s.cpu_trust_max < 1:
            raise ValueError("cpu_trust_max must be at least 1")
        if s.cpu_limit_cores is not None and not (
            s.cpu_limit_cores > 0 and 0 < s.cpu_min_share <= s.cpu_ceiling <= 1
        ):
            raise ValueError(
                "cpu_limit_cores must be > 0 and 0 < cpu_min_share <= cpu_ceiling <= 1"
            )
        self.s = s
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.knee = s.knee_per_proxy
        self._rates: deque[tuple[float, float]] = deque()  # (view time, invites/s)
        self._projections: deque[tuple[float, float]] = deque()  # (view time, projected)
        self._last_change = -math.inf
        self._last_view = -math.inf  # the knee learns once per scrape, not once per sync
        self._rate_since: float | None = None  # when the rate last rose from zero
        # what the last decision was based on, for the exporter and the log
        self.predicted_rate: float | None = None
        self.p99_ms: float | None = None
        self.cpu_knee: float | None = None  # the knee the CPU per invite measured, last read
        self._cpu_points: deque[tuple[float, float]] = deque(maxlen=settings.cpu_points)
        self.cpu_trust = 1.0  # the p99's correction of the CPU's knee

    def recommend(
        self, now: float, current: int, view: MetricView | None, readiness: Readiness
    ) -> Recommendation:
        s = self.s
        if view is None or view.invite_rate is None:
            return Recommendation(current, "predictive: no rate yet")
        rate = view.invite_rate
        fresh = view.time != self._last_view
        if fresh:
            self._last_view = view.time
            self._rates.append((view.time, rate))
            if rate <= 0:
                self._rate_since = None
            elif self._rate_since is None:
                self._rate_since = view.time
        # kept: what scale-in looks back over, and the last trend_points scrapes
        keep = view.time - s.scale_in_lead_times * s.lead_time_s
        while len(self._rates) > s.trend_points and self._rates[0][0] < keep:
            self._rates.popleft()
        # over the last trend_points scrapes, counted in scrapes: a window in seconds of twice
        # the scrape interval holds two or three of them by a few milliseconds of jitter
        since = math.inf if self._rate_since is None else self._rate_since + s.trend_after_s
        slope = least_squares_slope([p for p in self._rates if p[0] >= since][-s.trend_points :])
        predicted = max(0.0, rate + slope * s.lead_time_s)
        if fresh:
            self._projections.append((view.time, predicted))
        while self._projections and self._projections[0][0] < keep:
            self._projections.popleft()
        self.predicted_rate = predicted
        p99 = self._settled_p99(now, view, readiness)
        self.p99_ms = p99
        starting = current > len(readiness.ready) or bool(readiness.pending)
        # for a lead time after a change the metrics still describe the pool before it (the
        # p99 and CPU of a window when fewer proxies carried the rate): read against today's
        # rate per proxy they would teach a knee that is far too low
        settled_pool = not starting and now - self._last_change >= s.lead_time_s
        if fresh and p99 is not None and settled_pool:
            self._learn(p99, rate / max(1, len(readiness.ready)))
        if fresh and settled_pool:
            self._measure_knee(now, view, readiness, rate)
        knee = self.effective_knee
        per_proxy = s.target_share * knee
        wanted = math.ceil(max(rate, predicted) / per_proxy - 1e-9)
        about = (
            f"{rate:.1f}/s, {predicted:.1f}/s in {s.lead_time_s:.0f} s, knee {knee:.1f}/s"
            f"{'' if self.cpu_knee is None else f' (cpu {self.cpu_knee:.1f})'}"
            f", p99 {'-' if p99 is None else f'{p99:.0f} ms'}"
        )
        if p99 is not None and p99 > s.p0_ms and settled_pool:
            wanted = max(wanted, current + 1)  # over P0 whatever the rate says
        if wanted > current:
            return self._change(now, current, wanted, f"predictive: up, {about}")
        # scale-in: one fewer must carry the highest rate and projection of the last
        # scale_in_lead_times lead times, and the pool must have settled (the last change a lead
        # time ago, else it may be the proxy just added)
        recent = max((r for t, r in self._rates if t >= keep), default=rate)
        projected = max((r for _t, r in self._projections), default=predicted)
        need = math.ceil(max(recent, projected, predicted, rate) / per_proxy - 1e-9)
        calm_enough = p99 is None or p99 < s.breach_fraction * s.p0_ms
        if need < current and current > self.min_replicas and settled_pool and calm_enough:
            return self._change(now, current, current - 1, f"predictive: down, {about}")
        return Recommendation(current, f"predictive: hold {current}, {about}")

    @property
    def effective_knee(self) -> float:
        """The knee decisions use: the learned one, or the CPU's (as the p99 corrected it)
        where that is lower."""
        if self.cpu_knee is None:
            return self.knee
        return min(self.knee, self.cpu_knee * self.cpu_trust)

    def _measure_knee(
        self, now: float, view: MetricView, readiness: Readiness, rate: float
    ) -> None:
        """The invites/s a proxy serves at cpu_ceiling of its limit, from the settled proxies'
        CPU per invite (the load balancer spreads invites evenly over the ready ones)."""
        s = self.s
        if s.cpu_limit_cores is None or not readiness.ready:
            return
        settled = [
            pod
            for pod, since in readiness.ready_since.items()
            if now - since >= s.settle_s and view.cpu_cores.get(pod) is not None
        ]
        if not settled:
            return
        ceiling = s.cpu_ceiling * s.cpu_limit_cores
        per_proxy = rate / len(readiness.ready)
        used = [view.cpu_cores[pod] or 0.0 for pod in settled]
        # a throttled proxy's CPU is its limit whatever its rate: off the line
        self._cpu_points.extend((per_proxy, cores) for cores in used if cores < ceiling)
        line = _line(list(self._cpu_points), s.cpu_spread)
        if line is not None:
            background, per_invite = line
            self.cpu_knee = max(0.0, ceiling - background) / per_invite
            return
        cores = sum(used) / len(used)
        if cores >= s.cpu_min_share * s.cpu_limit_cores and per_proxy > 0:
            self.cpu_knee = per_proxy * ceiling / cores

    def _change(self, now: float, current: int, desired: int, reason: str) -> Recommendation:
        desired = clamp(desired, self.min_replicas, self.max_replicas)
        if desired != current:  # at the maximum, asking for more changes nothing
            self._last_change = now
        return Recommendation(desired, reason)

    def _settled_p99(self, now: float, view: MetricView, readiness: Readiness) -> float | None:
        """The pool's p99 (ms) without the proxies still warming up: the pool's own figure when
        every proxy has settled, else the worst settled proxy's."""
        settled = {
            pod for pod, since in readiness.ready_since.items() if now - since >= self.s.settle_s
        }
        if not settled:
            return None
        if settled >= set(view.p99_s) and view.p99_all_s is not None:
            return view.p99_all_s * 1000
        values = [v for pod, v in view.p99_s.items() if pod in settled and v is not None]
        return max(values) * 1000 if values else None

    def _learn(self, p99_ms: float, per_proxy: float) -> None:
        s = self.s
        if p99_ms > s.breach_fraction * s.p0_ms:
            cut = min(self.knee, per_proxy * s.knee_cut)
            self.knee = max(cut, s.knee_min_factor * s.knee_per_proxy)
            if self.cpu_knee:
                trust = min(self.cpu_trust, per_proxy * s.knee_cut / self.cpu_knee)
                self.cpu_trust = max(trust, s.knee_min_factor)
        elif p99_ms < s.calm_fraction * s.p0_ms and per_proxy >= (
            s.calm_load_share * s.target_share * self.effective_knee
        ):
            self.knee = min(self.knee * (1 + s.knee_raise), s.knee_max_factor * s.knee_per_proxy)
            self.cpu_trust = min(self.cpu_trust * (1 + s.knee_raise), s.cpu_trust_max)


def _line(points: list[tuple[float, float]], spread: float) -> tuple[float, float] | None:
    """Least squares cores = background + per_invite * rate, when the rates spread over
    `spread` of the highest and CPU rises with them; a negative background is read as none."""
    if len(points) < 3:
        return None
    rates = [r for r, _ in points]
    if max(rates) <= 0 or max(rates) - min(rates) < spread * max(rates):
        return None
    per_invite = least_squares_slope(points)
    if per_invite <= 0:
        return None
    mean_r = sum(rates) / len(points)
    background = sum(c for _, c in points) / len(points) - per_invite * mean_r
    if background < 0:
        # through the origin instead: the cost per invite alone
        per_invite = sum(c * r for r, c in points) / sum(r * r for r in rates)
        background = 0.0
    return background, per_invite
