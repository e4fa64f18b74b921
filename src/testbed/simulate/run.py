"""`testbed simulate`: an experiment file played against the proxy model, into the same kind
of results folder a real run writes (timeseries.csv, autoscaler.csv, summary.json, report).

The invites are the ones the real run would send (the scenario generator's times for the same
seed); the autoscaler is the real one (LocalAutoscaler with the experiment's policy), fed with
the simulated samples and driving a SimulatedScaler. Per-call records would be too many for a
long run: the calls are counted.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from scenario_csv.validator import ScenarioSummary
from scenario_gen.scenario import Scenario
from scenario_gen.schedule import invite_times_ms
from testbed.autoscale.factory import build_policy
from testbed.autoscale.local import LocalAutoscaler
from testbed.experiment.csvstream import CsvStream
from testbed.experiment.deadline import COMPLETED, RunEnd
from testbed.experiment.runner import (
    AUTOSCALER_COLUMNS,
    Prepared,
    new_results_folder,
    write_results,
)
from testbed.experiment.spec import Experiment
from testbed.sample import Clients, ProxyReading, Sample, ScenarioRun
from testbed.simulate.calibration import Calibration
from testbed.simulate.proxy_model import BucketReader, IntArray, Interval, ProxyPool
from testbed.simulate.scaler import SimulatedScaler


class SimulationError(ValueError):
    pass


@dataclass(frozen=True)
class Offered:
    """The load: new calls per CFS period for the whole run (scenario and drain)."""

    per_period: IntArray
    duration_s: float  # the scenario's, at its speed
    peak_rate: float  # invites/s, at its speed
    pods: int
    phones_per_pod: int


def offered_load(experiment: Experiment, period_s: float, sample_periods: int) -> Offered:
    """The invite times the scenario generator gives for this experiment, per period."""
    generate = experiment.scenario.generate
    if generate is None:
        raise SimulationError(
            f"{experiment.name}: the simulator needs scenario.generate (a scenario CSV is "
            "not supported yet)"
        )
    scenario = Scenario(generate)
    speed = experiment.scenario.speed
    duration = scenario.shape.duration_s / speed
    total_s = duration + experiment.drain_s + experiment.scenario.hold_ms / 1000
    samples = max(1, math.ceil(total_s / (sample_periods * period_s) - 1e-9))
    periods = samples * sample_periods
    counts = np.zeros(periods, dtype=np.int64)
    for at_ms in invite_times_ms(scenario.shape, generate.arrivals, generate.seed):
        index = np.minimum((at_ms / speed / 1000 / period_s).astype(np.int64), periods - 1)
        if len(index):  # counted over the chunk's own span, not the whole run's periods
            low = int(index.min())
            part = np.bincount(index - low)
            counts[low : low + len(part)] += part
    return Offered(
        counts,
        duration,
        scenario.shape.peak * speed,
        generate.pods,
        generate.phones_per_pod,
    )


class WindowedLevels:
    """The last `window` samples' response-time levels, per proxy and in all, as running sums
    (a sample in, the oldest out), so a long run costs the same per sample as a short one."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._samples: deque[dict[str, IntArray]] = deque()
        self._sums: dict[str, IntArray] = {}
        self._present: dict[str, int] = {}  # samples in the window that have the proxy
        self._total = np.zeros(0, dtype=np.int64)

    def add(self, levels: dict[str, IntArray]) -> None:
        self._samples.append(levels)
        for name, a in levels.items():
            self._sums[name] = _plus(self._sums.get(name), a, 1)
            self._total = _plus(self._total, a, 1)
            self._present[name] = self._present.get(name, 0) + 1
        while len(self._samples) > self.window:
            for name, a in self._samples.popleft().items():
                self._total = _plus(self._total, a, -1)
                self._present[name] -= 1
                if self._present[name]:
                    self._sums[name] = _plus(self._sums[name], a, -1)
                else:  # no sample of it left in the window
                    del self._sums[name], self._present[name]

    def of(self, name: str) -> IntArray:
        return self._sums.get(name, np.zeros(0, dtype=np.int64))

    def total(self) -> IntArray:
        return self._total


def _plus(into: IntArray | None, a: IntArray, sign: int) -> IntArray:
    if into is None:
        into = np.zeros(0, dtype=np.int64)
    into = np.pad(into, (0, len(a) - len(into))) if len(a) > len(into) else into.copy()
    into[: len(a)] += sign * a
    return into


class Simulation:
    """One experiment against the model, sample by sample (sans-I/O but for `run`)."""

    def __init__(self, experiment: Experiment, calibration: Calibration) -> None:
        self.experiment = experiment
        self.calibration = calibration
        period = calibration.period_s
        self.sample_periods = max(1, round(experiment.sample_interval_s / period))
        self.interval_s = self.sample_periods * period
        self.offered = offered_load(experiment, period, self.sample_periods)
        proxies = experiment.proxies
        if proxies.count is not None:
            self.initial = proxies.count
        else:
            assert proxies.plan is not None
            self.initial = proxies.plan.proxies_for(self.offered.peak_rate)
        millicores = proxies.millicores
        self.pool = ProxyPool(
            calibration,
            None if millicores is None else millicores / 1000,
            experiment.scenario.hold_ms / 1000,
            self.offered.pods * self.offered.phones_per_pod,
            np.random.default_rng(experiment.seed),
        )
        self.now = 0.0
        # the time series' percentiles, read from buckets as the real ones are
        self.buckets = BucketReader(calibration.bucket_bounds(), calibration)
        self.windows = WindowedLevels(max(1, round(experiment.qos.window_s / self.interval_s)))
        # every sample's levels from `tally_from_s` on (a benchmark step's, after its warm-up)
        self.tally_from_s = 0.0
        self.tally = np.zeros(0, dtype=np.int64)
        self.notes: list[str] = []
        self.samples: list[Sample] = []
        self.autoscaler_rows: list[dict[str, Any]] = []
        self.succeeded = 0
        self.failed = 0
        self.retransmissions = 0
        spec = experiment.autoscale
        self.scaler = SimulatedScaler(
            self.initial,
            lambda: self.now,
            mode=spec.pod_management if spec else "ordered",
            startup_delay_s=(spec.startup_delay_s if spec else 0.0) + calibration.local_ready_s,
        )
        for name in self.scaler.ready():
            self.pool.join(name, sync=False)
        # the runner registers the phones, then waits before the scenario: the refreshes come
        # that much earlier than a whole interval into the run
        self.pool.schedule_refreshes(
            calibration.reregister_interval_s - experiment.registration_settle_s, self.initial
        )
        # sections of the experiment the model has no part for (summary.json says so)
        self.not_simulated = [
            name
            for name, present in (("faults", bool(experiment.faults)), ("noise", experiment.noise))
            if present
        ]
        self.autoscaler: LocalAutoscaler | None = None
        if spec is not None:
            policy = build_policy(spec, experiment.qos.p0_ms, millicores)
            self.autoscaler = LocalAutoscaler(
                spec, policy, lambda n: None, self.initial, self.notes.append, scaler=self.scaler
            )
            self.autoscaler.start()

    @property
    def samples_total(self) -> int:
        return len(self.offered.per_period) // self.sample_periods

    def step(self) -> Sample:
        """The next sample: the proxies serving now play one sample interval."""
        index = len(self.samples)
        serving = self.scaler.ready()
        self.pool.serve(serving)
        start = index * self.sample_periods
        interval = self.pool.advance(self.offered.per_period[start : start + self.sample_periods])
        self.now += self.interval_s
        self.windows.add(interval.levels)
        if self.now > self.tally_from_s:
            for levels in interval.levels.values():
                self.tally = _plus(self.tally, levels, 1)
        self.succeeded += interval.calls - interval.failed
        self.failed += interval.failed
        self.retransmissions += interval.retransmissions
        sample = self._sample(interval)
        if self.autoscaler is not None:
            written = len(self.autoscaler.events)
            sample = self.autoscaler.tick(self.now, sample)
            self.autoscaler_rows.extend(self.autoscaler.log_rows(written))
        self.samples.append(sample)
        return sample

    def _sample(self, interval: Interval) -> Sample:
        seconds, invites, cpu, calls = (
            self.interval_s,
            interval.invites,
            interval.cpu_seconds,
            interval.calls,
        )
        percentile = self.experiment.qos.percentile

        def latency(levels: IntArray) -> float | None:
            return self.buckets.percentile_ms(levels, percentile)

        readings = tuple(
            ProxyReading(
                name,
                invites_per_s=invites[name] / seconds,
                invite_requests_per_s=2 * invites[name] / seconds,
                registers_per_s=interval.registers.get(name, 0) / seconds,
                cpu_mcpu=cpu[name] / seconds * 1000,
                ok_per_s=invites[name] / seconds,
                latency_percentile_ms=latency(self.windows.of(name)),
            )
            for name in sorted(invites, key=lambda n: int(n.rsplit("-", 1)[1]))
        )
        t_s = round(self.now, 6)
        finished = t_s >= self.offered.duration_s
        return Sample(
            t_s=t_s,
            proxies=len(readings),
            replicas=self.scaler.replicas,
            per_proxy=readings,
            percentile=percentile,
            latency_percentile_ms=latency(self.windows.total()),
            lb_invites_per_s=calls / seconds,
            scenario=ScenarioRun(
                scheduled=self.succeeded + self.failed,  # every invite sent so far
                sent_per_s=calls / seconds,
                undeliverable_per_s=0.0,
                run_state="finished" if finished else "running",
            ),
            clients=Clients(
                calls_succeeded_per_s=(calls - interval.failed) / seconds,
                calls_failed_per_s=interval.failed / seconds,
                registered=self.offered.pods * self.offered.phones_per_pod,
            ),
        )

    def run(self, progress: Callable[[Sample], None] | None = None) -> list[Sample]:
        for _ in range(self.samples_total):
            sample = self.step()
            if progress is not None:
                progress(sample)
        return self.samples


def simulate(
    experiment: Experiment,
    calibration: Calibration,
    results_root: Path,
    experiment_file: Path | None = None,
    calibration_file: Path | None = None,
    folder_name: str | None = None,
    progress: Callable[[Sample], None] | None = None,
) -> Path:
    """Simulate `experiment`; returns its results folder (`<name>-sim-<time>` by default)."""
    simulation = Simulation(experiment, calibration)  # a bad experiment fails before any folder
    out = new_results_folder(results_root, experiment, experiment_file, folder_name, "-sim")
    (out / "calibration.yaml").write_text(yaml.safe_dump(calibration.model_dump(), sort_keys=False))
    started = time.perf_counter()
    samples = simulation.run(progress)
    elapsed = time.perf_counter() - started
    if simulation.autoscaler is not None:
        log = CsvStream(out / "autoscaler.csv", AUTOSCALER_COLUMNS)
        for row in simulation.autoscaler_rows:
            log.append(row)
        log.close()
    offered = simulation.offered
    summary = ScenarioSummary(
        rows=int(offered.per_period.sum()),
        duration_s=offered.duration_s,
        peak_rate=offered.peak_rate / experiment.scenario.speed,
        pods=list(range(offered.pods)),
        phones_per_pod=offered.phones_per_pod,
    )
    # no scenario.csv is written (a week of it would be gigabytes): the model took the times
    prepared = Prepared(Path(), summary, simulation.initial, [])
    extra = {
        "simulated": True,
        "calibration": str(calibration_file) if calibration_file else None,
        "simulation_s": round(elapsed, 3),
        "speedup": round(samples[-1].t_s / elapsed, 1) if samples and elapsed > 0 else None,
        "retransmissions": simulation.retransmissions,
        "registrations": simulation.pool.registrations,
        "registration_retransmissions": simulation.pool.register_retransmissions,
        "registrations_failed": simulation.pool.registrations_failed,
        "notes": simulation.notes[-20:],
        "not_simulated": simulation.not_simulated,
    }
    write_results(
        out,
        experiment,
        prepared,
        samples,
        [],
        0,
        extra=extra,
        end=RunEnd(COMPLETED, "the simulated scenario finished"),
        counted=(simulation.succeeded, simulation.failed),
    )
    return out
