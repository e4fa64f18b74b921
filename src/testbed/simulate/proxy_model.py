"""The proxies as a fluid model, sans-I/O: invites per CFS period go in, CPU and response-time
levels come out.

Each proxy is a FIFO of CPU work served at most `quota = limit x period` per period (the CFS
quota). Work is the calibrated background, the calls' costs, retransmitted INVITEs, the phones'
re-registrations (on the proxy that takes each and, over DMQ, on the others) and, when a proxy
joins, the registrations it takes in over DMQ. The backlog follows Lindley's recursion,
solved for a few periods at once with cumulative sums (numpy, no Python step per message).

A proxy behind its work behaves differently from one with CPU to spare: messages that arrive
while older work waits are handled back to back with it (a throttled proxy wakes up once for
many), at the batched cost, and each period it starts behind costs a fixed overhead (its
processes resuming after the quota ran out). Both scale with the share of the period the proxy
spends on older work: its starting backlog over the quota, at most 1. The work then depends on
the backlog and the backlog on the work; the pass is solved by iterating to the fixed point,
which is the period-by-period solution.

A message waits behind the backlog left from earlier periods and behind the work ahead of it in
its own period (arrivals spread evenly over a period): its response time is its "level", the
number of whole periods it waits, times the period (a throttled proxy answers in multiples of
the period, as measured), or the base latency at level 0. Requests that wait past T1 are sent
again (timer A: at 1, 3, 7, ... x T1), which adds work later: that is how overload turns into
collapse. A call whose INVITE waits past timer B fails.

Each call gives three response-time samples, as the analyzer pairs them: the INVITE and its
challenge, the authenticated INVITE forwarded, its 200 forwarded.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from testbed.experiment.histogram import quantile
from testbed.simulate.calibration import Calibration
from testbed.simulate.registration_start import StartCosts, start_completions

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SAMPLES_PER_CALL = 3  # invite_challenge, invite_forward, ok_forward
INVITES_PER_CALL = 2  # the challenged INVITE and the authenticated one
# the batched cost's fixed point: iterations before the pass is played period by period, and
# the backlog difference (CPU seconds) taken as settled
BATCH_ITERATIONS = 40
BATCH_TOLERANCE = 1e-12
REGISTER_RETRY_S = 10.0  # a phone whose REGISTER timed out tries again (sip-client's default)
RETRY_SPREAD = 10  # ... 1.0, 1.1, ..., 1.9 times later by the last digit of its number


def whole_periods(seconds: float, period_s: float) -> int:
    """The first period boundary at or after `seconds` (a timer fires in that period)."""
    return math.ceil(seconds / period_s - 1e-9)


@dataclass(frozen=True)
class Interval:
    """What the proxies did over some periods (one sample's worth)."""

    periods: int
    invites: dict[str, int]  # new calls handed to each proxy
    cpu_seconds: dict[str, float]  # CPU each proxy used
    levels: dict[str, IntArray]  # response-time samples per level (index: whole periods waited)
    calls: int  # calls that arrived
    failed: int  # of them, calls whose INVITE waited past timer B
    retransmissions: int
    # REGISTER requests each proxy got: two a registration (the challenged one and the one
    # with credentials, as the proxy's counter counts them) and the ones sent again
    registers: dict[str, int] = field(default_factory=dict)


class ProxyPool:
    """The proxies of one run; `serve` chooses who takes new calls (the LB's dispatcher set)."""

    def __init__(
        self,
        calibration: Calibration,
        limit_cores: float | None,
        hold_s: float,
        phones: int,
        rng: np.random.Generator,
        capacity: int = 100,
    ) -> None:
        c = calibration
        self.calibration = c
        self.period_s = c.period_s
        cores = c.unlimited_cores if limit_cores is None else limit_cores
        self.quota = cores * c.period_s  # CPU seconds per period
        self.background = c.background_mcpu / 1000 * c.period_s
        self.call_now = c.cpu_ms_per_call / 1000 * (1 - c.bye_share)
        self.call_end = c.cpu_ms_per_call / 1000 * c.bye_share
        # a waiting call has two INVITEs waiting: the first one, challenged again when it is
        # sent again (the proxy keeps no transaction for it), and the authenticated one, absorbed
        challenge = c.retransmission_cpu_ms if c.challenge_cpu_ms is None else c.challenge_cpu_ms
        self.retransmission = (challenge + c.retransmission_cpu_ms) / 2 / 1000
        self.phones = phones
        self.register_work = c.register_cpu_ms / 1000
        self.replica_work = c.dmq_replica_cpu_ms / 1000
        self.refresh_periods = max(1, round(c.reregister_interval_s / c.period_s))
        self.retry_periods = round(REGISTER_RETRY_S / c.period_s)
        self._due: dict[int, int] = {}  # period -> registrations the phones start then
        self._due_periods: list[int] = []  # the same periods, a heap
        self.registrations = 0
        self.register_retransmissions = 0
        self.registrations_failed = 0
        # a REGISTER still waiting is sent again (timer E: T1, then doubling up to T2) and
        # processed again in full: the proxy keeps no transaction for either of its two
        # requests (the 401 and the 200 are sent statelessly); one of the two, on the mean
        self.register_retransmission = self.register_work / 2
        offsets_e = []
        at, gap = c.t1_s, c.t1_s
        while at < c.timeout_s:
            offsets_e.append(at)
            gap = min(2 * gap, c.t2_s)
            at += gap
        self.register_levels = np.array(
            [whole_periods(o, c.period_s) for o in offsets_e], dtype=np.int64
        )
        batched = (
            c.cpu_ms_per_call if c.batched_cpu_ms_per_call is None else c.batched_cpu_ms_per_call
        )
        self.discount = 1 - batched / c.cpu_ms_per_call  # off a message's cost when batched
        self.overhead = c.throttled_overhead_ms / 1000  # per period spent behind
        self.sync_work = phones * c.dmq_sync_ms_per_phone / 1000
        self.hold_periods = max(1, round(hold_s / c.period_s))
        # timer A fires T1, 3 T1, 7 T1, ... after the first send, while the INVITE is waiting
        offsets = []
        j = 1
        while c.t1_s * (2**j - 1) < c.timeout_s:
            offsets.append(c.t1_s * (2**j - 1))
            j += 1
        self.retransmit_levels = np.array(
            [whole_periods(o, c.period_s) for o in offsets], dtype=np.int64
        )
        self.timeout_level = whole_periods(c.timeout_s, c.period_s)
        # the periods played at once where requests wait past T1: a retransmission (T1 or
        # more later) never lands inside them
        self.chunk = max(1, int(self.retransmit_levels[0]) if offsets else 1_000_000)
        self.horizon = self.hold_periods + self.timeout_level + 2
        self.rng = rng
        self.capacity = capacity
        self.slots: dict[str, int] = {}
        self.backlog = np.zeros(capacity)
        self.future = np.zeros((capacity, self.horizon))  # work due at (period % horizon)
        self.future_registers = np.zeros((capacity, self.horizon))  # REGISTERs arriving then
        self.period = 0  # absolute index of the next period
        self.serving: list[str] = []
        self.draining: list[str] = []  # removed from the LB, finishing their calls

    def schedule_refreshes(self, first_s: float, proxies: int) -> None:
        """The phones refresh their bindings every `reregister_interval_s` after their last 200.
        They registered together before the run on the `proxies` of the start, so each refresh
        has the shape of the start's 200s (registration_start.py plays them request by
        request), the first one ending `first_s` into the run. Each registration costs the
        proxy the LB hands it `register_cpu_ms`, and every other serving proxy its DMQ copy."""
        if self.phones <= 0 or (self.register_work <= 0 and self.replica_work <= 0):
            return
        costs = StartCosts(
            self.register_work / 2, self.register_work / 2, self.replica_work, self.discount
        )
        budget = max(self.quota - self.background, 1e-3 * self.quota)
        done = start_completions(
            self.phones,
            proxies,
            costs,
            budget,
            self.register_levels,
            self.timeout_level,
            self.retry_periods,
            self.refresh_periods,
            self.rng.spawn(1)[0],  # its own stream: the LB's draws stay those of the seed
        )
        if not len(done):
            return
        end = self.period + max(0, round(first_s / self.period_s))
        for period, count in enumerate(np.bincount(done)):
            if count:
                self._start_registrations(end - int(done[-1]) + period, int(count))

    def _start_registrations(self, period: int, count: int) -> None:
        if period not in self._due:
            heapq.heappush(self._due_periods, period)
        self._due[period] = self._due.get(period, 0) + count

    def _refreshes(self, slots: IntArray, serving: int, step: int) -> None:
        """Hand the REGISTERs the phones start in the next `step` periods to the serving
        proxies (ahead of the pass that plays them: it reads them from `future_registers`).
        Those due before now come now; with nobody serving, they time out and the phones try
        again later."""
        end = self.period + step
        while self._due_periods and self._due_periods[0] < end:
            due = heapq.heappop(self._due_periods)
            count = self._due.pop(due)
            at = max(due, self.period)
            self.registrations += count
            if not serving:
                self._failed_registrations(at + self.timeout_level, count)
                continue
            taken = self.rng.multinomial(count, [1.0 / serving] * serving)
            ring = at % self.horizon
            self.future_registers[slots[:serving], ring] += taken
            self.future[slots[:serving], ring] += (count - taken) * self.replica_work

    def _failed_registrations(self, period: int, count: int) -> None:
        """Registrations that failed at `period`: their phones start again after their retry
        time, 1.0 to 1.9 times `REGISTER_RETRY_S` by their number (as the client spreads them)."""
        self.registrations_failed += count
        shares = np.diff(np.round(np.linspace(0, count, RETRY_SPREAD + 1))).astype(np.int64)
        for i, share in enumerate(shares):
            if share:
                delay = round(self.retry_periods * (1 + i / RETRY_SPREAD))
                self._start_registrations(period + delay, int(share))

    def _refresh_after(self, registers: FloatArray, top: FloatArray, safe: FloatArray) -> None:
        """Each registration of this pass refreshes `refresh_periods` after its 200, which
        comes when the proxy got to it: the share of a period's REGISTERs that waited k
        periods, as for the calls' samples. One that waited past timer F failed: the phone
        tries again after its retry time."""
        quota, limit = self.quota, self.timeout_level
        for t in np.flatnonzero(registers.sum(axis=1) > 0):
            count = registers[t]
            waits = min(int(np.ceil(top[t].max() / quota - 1e-9)), limit)
            ks = np.arange(0, waits + 1, dtype=np.float64)
            at_least = self._behind(top[t], safe[t], ks[:, np.newaxis])
            at_least[0] = 1.0
            at_least = np.minimum.accumulate(at_least, axis=0)
            if waits < limit:  # nobody waited past timer F
                at_least[-1] = 0.0
            exact = -np.diff(at_least, axis=0, append=np.zeros((1, len(count))))
            per_wait = (exact * count).sum(axis=1)  # waited k periods; the last: failed
            whole = np.diff(np.round(np.concatenate([[0.0], np.cumsum(per_wait)])))
            start = self.period + int(t)
            for k, done in enumerate(whole[:-1]):
                if done >= 1:
                    self._start_registrations(start + k + self.refresh_periods, int(done))
            failed = int(whole[-1]) if waits == limit else 0
            if failed:
                self._failed_registrations(start + limit, failed)

    def join(self, name: str, sync: bool = True) -> None:
        """A proxy starts serving: it first takes in the registrations over DMQ (`sync`; the
        proxies of the start got them as the phones registered, before the scenario)."""
        if name in self.slots:
            return
        free = sorted(set(range(self.capacity)) - set(self.slots.values()))
        if not free:
            raise ValueError(f"more than {self.capacity} proxies")
        slot = free[0]
        self.slots[name] = slot
        self.backlog[slot] = self.sync_work if sync else 0.0
        self.future[slot] = 0.0
        self.future_registers[slot] = 0.0

    def leave(self, name: str) -> None:
        """A proxy is gone: its state with it."""
        slot = self.slots.pop(name, None)
        if slot is not None:
            self.backlog[slot] = 0.0
            self.future[slot] = 0.0
            self.future_registers[slot] = 0.0
        if name in self.draining:
            self.draining.remove(name)

    def serve(self, names: list[str]) -> None:
        """The proxies the load balancer hands new calls to. One that is no longer among them
        drains: no new calls, but it works off its queue and its calls' BYEs (they follow the
        Record-Route), then goes. One that comes back is a new pod (and syncs again)."""
        for name in names:
            if name in self.draining:
                self.leave(name)
            self.join(name)
        for name in sorted(set(self.slots) - set(names) - set(self.draining)):
            self.draining.append(name)
        self.serving = sorted(names, key=lambda n: self.slots[n])

    def _drained(self) -> None:
        for name in list(self.draining):
            slot = self.slots[name]
            if (
                self.backlog[slot] <= 1e-12
                and not self.future[slot].any()
                and not self.future_registers[slot].any()
            ):
                self.leave(name)

    def advance(self, arrivals: IntArray) -> Interval:
        """Play `len(arrivals)` periods; `arrivals[i]`: new calls at the LB in period i.

        All periods are first played in one pass; only where a request would wait past T1
        (so its retransmission could land inside the pass) are they replayed a few periods at
        a time, so that every retransmission lands after the periods already played."""
        periods = len(arrivals)
        names = [*self.serving, *self.draining]  # the draining ones last, with no new calls
        slots = np.array([self.slots[n] for n in names], dtype=np.int64)
        n, serving = len(names), len(self.serving)
        calls = int(arrivals.sum())
        if serving == 0:  # nobody serves: every call fails (the LB answers nothing)
            self._refreshes(slots, 0, periods)  # nor any REGISTER
            for name in list(self.draining):
                self.leave(name)
            self._tick(periods)
            return Interval(periods, {}, {}, {}, calls, calls, 0, {})
        # the LB's Call-ID hash: each call to any serving proxy with equal chance
        split = np.zeros((periods, n), dtype=np.int64)
        split[:, :serving] = self.rng.multinomial(arrivals, [1.0 / serving] * serving)
        cpu = np.zeros(n)
        registers = np.zeros(n, dtype=np.int64)
        levels = np.zeros((n, 1), dtype=np.int64)
        failed = 0
        retransmissions = 0
        start = 0
        # a pass must not wrap around the ring of future work (nor reach its own BYEs there)
        longest = max(1, self.horizon - self.hold_periods - 1)
        while start < periods:
            step = min(periods - start, longest)
            self._refreshes(slots, serving, step)
            out = self._play(slots, split[start : start + step], whole=True)
            if out is None:
                step = min(self.chunk, step)
                out = self._play(slots, split[start : start + step], whole=False)
                assert out is not None
            cpu += out[0]
            if out[1].shape[1] > levels.shape[1]:
                levels = np.pad(levels, ((0, 0), (0, out[1].shape[1] - levels.shape[1])))
            levels[:, : out[1].shape[1]] += out[1]
            failed += out[2]
            retransmissions += out[3]
            registers += out[4]
            start += step
        while levels.shape[1] > 1 and not levels[:, -1].any():  # float dust at the top
            levels = levels[:, :-1]
        invites = split.sum(axis=0)
        self._drained()
        shown = names[:serving]  # a draining proxy is out of the pool (its CPU is not shown)
        return Interval(
            periods,
            {name: int(invites[i]) for i, name in enumerate(shown)},
            {name: float(cpu[i]) for i, name in enumerate(shown)},
            {name: levels[i] for i, name in enumerate(shown)},
            calls,
            failed,
            retransmissions,
            {name: int(registers[i]) for i, name in enumerate(shown)},
        )

    def _tick(self, step: int) -> None:
        index = (self.period + np.arange(step)) % self.horizon
        self.future[:, index] = 0.0
        self.future_registers[:, index] = 0.0
        self.period += step

    def _behind(self, top: FloatArray, safe: FloatArray, level: float | FloatArray) -> FloatArray:
        """The share of a period's requests still waiting `level` periods on (arrivals spread
        evenly over the period's work `safe`, the last behind `top`): for the calls' samples,
        the timers' retransmissions and failures, and when registrations got their 200."""
        return np.clip((top - level * self.quota) / safe, 0, 1)

    def _lindley(self, work: FloatArray, before: FloatArray) -> tuple[FloatArray, FloatArray]:
        """B_t = max(0, B_{t-1} + W_t - Q) for all periods at once: each period's closing
        backlog and its starting one."""
        s = np.cumsum(work - self.quota, axis=0)
        backlog = s - np.minimum(np.minimum.accumulate(s, axis=0), -before)
        prior = np.vstack([before[np.newaxis, :], backlog[:-1]])
        return backlog, prior

    def _batched_work(self, messages: FloatArray, prior: FloatArray) -> FloatArray:
        share = np.minimum(prior / self.quota, 1.0)  # of the period spent on older work
        return self.background + messages * (1 - self.discount * share) + self.overhead * share

    def _batched(
        self, messages: FloatArray, before: FloatArray, prior: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Work, closing and starting backlogs with the batched cost. Iterating backlog ->
        cost -> backlog makes at least one more period exact each time, and settles
        geometrically while the batched share is below 1; a pass that has not settled after
        BATCH_ITERATIONS is played period by period (the same solution, slower)."""
        for _ in range(BATCH_ITERATIONS):
            work = self._batched_work(messages, prior)
            backlog, new_prior = self._lindley(work, before)
            settled = np.abs(new_prior - prior).max() <= BATCH_TOLERANCE
            prior = new_prior
            if settled:
                return work, backlog, prior
        work = np.empty_like(messages)
        backlog = np.empty_like(messages)
        carried = before.copy()
        for t in range(len(messages)):
            prior[t] = carried
            work[t] = self._batched_work(messages[t], carried)
            carried = np.maximum(0.0, carried + work[t] - self.quota)
            backlog[t] = carried
        return work, backlog, prior

    def _play(
        self, slots: IntArray, split: IntArray, whole: bool
    ) -> tuple[FloatArray, IntArray, int, int, IntArray] | None:
        """`split[t, i]`: calls to proxy slots[i] in period t. CPU, levels, failed calls,
        retransmissions, REGISTER requests; None, with nothing changed, when `whole` and a
        request would wait past T1 (the caller then plays fewer periods, fewer than T1's)."""
        step, n = split.shape
        index = (self.period + np.arange(step)) % self.horizon
        grid = np.ix_(slots, index)
        due = self.future[grid].T  # (step, n) work scheduled earlier
        registers = self.future_registers[grid].T  # (step, n) REGISTERs arriving
        # CPU of the messages, each handled alone
        messages = split * self.call_now + registers * self.register_work + due
        h = self.hold_periods
        if h < step:  # BYEs of calls begun in this pass that end inside it
            messages[h:] += split[:-h] * self.call_end
        quota = self.quota
        before = self.backlog[slots]
        work = self.background + messages
        backlog, prior = self._lindley(work, before)
        if (self.discount > 0 or self.overhead > 0) and prior.any():
            work, backlog, prior = self._batched(messages, before, prior)
        top = prior + work  # the work a sample arriving last in its period waits behind
        first = self.retransmit_levels[0] if len(self.retransmit_levels) else None
        if whole and first is not None and (top > first * quota).any():
            return None
        self.future[grid] = 0.0
        self.future_registers[grid] = 0.0
        self.backlog[slots] = backlog[-1]
        served = prior + work - backlog

        # samples at level >= k: those behind more than k quotas of work
        # the highest level any sample reaches: its work ends past k_max quotas
        k_max = max(0, int(np.ceil(top.max() / quota)) - 1) if top.size else 0
        samples = split * SAMPLES_PER_CALL
        safe = np.where(work > 1e-12, work, 1.0)  # no work: no samples, any divisor
        if k_max:
            ks = np.arange(1, k_max + 1, dtype=np.float64)
            share = self._behind(top[..., np.newaxis], safe[..., np.newaxis], ks)
            at_least = (samples[..., np.newaxis] * share).sum(axis=0)  # (n, k_max)
        else:
            at_least = np.zeros((n, 0))
        total = samples.sum(axis=0).astype(np.float64)
        ge = np.round(np.concatenate([total[:, np.newaxis], at_least], axis=1)).astype(np.int64)
        ge = np.minimum.accumulate(ge, axis=1)  # rounding must not make it grow
        levels = ge - np.concatenate([ge[:, 1:], np.zeros((n, 1), dtype=np.int64)], axis=1)

        # requests still waiting at each timer firing are sent again, due that much later (at
        # least T1 later: beyond this pass, which is shorter than T1 unless nothing waits):
        # INVITEs on timer A, REGISTERs on timer E (processed again in full); past timer B a
        # call fails, past timer F a registration (its phone tries again: _refresh_after)
        retransmitted = 0
        failed = 0
        register_requests = np.round(registers.sum(axis=0) * 2).astype(np.int64)
        late: FloatArray = np.zeros(split.shape)
        if not whole:

            def behind(level: int) -> FloatArray:
                return self._behind(top, safe, level)

            def send_again(requests: FloatArray, timers: IntArray, cost: float) -> IntArray:
                """How many each proxy gets again."""
                sent = np.zeros(n, dtype=np.int64)
                for level in timers:
                    count = np.round(requests * behind(int(level)))
                    sent += count.sum(axis=0).astype(np.int64)
                    targets = (self.period + np.arange(step) + int(level)) % self.horizon
                    self.future[np.ix_(slots, targets)] += (count * cost).T
                return sent

            invites = (split * INVITES_PER_CALL).astype(np.float64)
            retransmitted = int(
                send_again(invites, self.retransmit_levels, self.retransmission).sum()
            )
            again = send_again(registers, self.register_levels, self.register_retransmission)
            self.register_retransmissions += int(again.sum())
            register_requests += again
            expired = behind(self.timeout_level)
            late = split.astype(np.float64) * expired
            failed = int(np.round(late.sum()))
        if registers.any():
            self._refresh_after(registers, top, safe)
        # the others end after their hold time: BYEs due after this pass
        ending = np.arange(step) + h >= step
        ends = (self.period + np.arange(step)[ending] + h) % self.horizon
        self.future[np.ix_(slots, ends)] += ((split - late)[ending] * self.call_end).T
        self.period += step
        return served.sum(axis=0), levels, failed, retransmitted, register_requests


def percentile_level(levels: IntArray, percentile: float) -> int | None:
    """The level at or below which `percentile`% of the samples are (None: no samples)."""
    total = int(levels.sum())
    if total == 0:
        return None
    rank = math.ceil(percentile / 100 * total)
    return int(np.searchsorted(np.cumsum(levels), rank))


def level_ms(level: int, calibration: Calibration) -> float:
    """The response time a level stands for."""
    return calibration.base_latency_ms if level == 0 else level * calibration.period_s * 1000


class BucketReader:
    """Percentiles as Prometheus's histogram_quantile reads them from buckets with these upper
    bounds (seconds): each level's samples counted in the first bucket that holds its response
    time, then linear interpolation inside the bucket of the rank. Without bounds, the exact
    level's time. Which bucket each level falls in is worked out once."""

    def __init__(self, bounds: tuple[float, ...], calibration: Calibration) -> None:
        self.bounds = bounds
        self.calibration = calibration
        self._where = np.zeros(0, dtype=np.int64)  # level -> bucket index (len(bounds): +Inf)

    def percentile_ms(self, levels: IntArray, percentile: float) -> float | None:
        if not self.bounds:
            level = percentile_level(levels, percentile)
            return None if level is None else level_ms(level, self.calibration)
        total = int(levels.sum())
        if total == 0:
            return None
        if len(levels) > len(self._where):
            times = np.arange(len(levels) * 2) * self.calibration.period_s
            times[0] = self.calibration.base_latency_ms / 1000
            self._where = np.searchsorted(np.array(self.bounds), times - 1e-12, side="left")
        counts = np.bincount(
            self._where[: len(levels)], weights=levels, minlength=len(self.bounds) + 1
        )
        cumulative = np.cumsum(counts).tolist()
        buckets = dict(zip(self.bounds, cumulative, strict=False))
        buckets[math.inf] = cumulative[-1]
        value = quantile(percentile / 100, buckets)
        return None if value is None else value * 1000
