"""`testbed run EXPERIMENT.yaml`: bring the local testbed up, play the scenario, sample every
second, collect what every component recorded, stop everything, write the results folder."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

import api_token
from scenario_csv import ScenarioSummary, text_lines, validate
from scenario_gen.output import write_file
from scenario_gen.scenario import Scenario
from scenario_gen.spec import StepShape, TableShape
from testbed.autoscale.factory import build_policy
from testbed.autoscale.local import LocalAutoscaler
from testbed.autoscale.prom_metrics import PrometheusMetrics
from testbed.config import TestbedSettings
from testbed.experiment.clock import Clock, RealClock
from testbed.experiment.collect import Budget, BudgetSpent, collect_local, ensure_files
from testbed.experiment.collect import fetch_run_log as fetch_run_log  # also the cluster's
from testbed.experiment.collect import write_calls as write_calls
from testbed.experiment.csvstream import CsvStream, write_csv
from testbed.experiment.deadline import (
    COMPLETED,
    FAILED,
    INTERRUPTED,
    EndWatch,
    RunEnd,
    deadline_margin,
)
from testbed.experiment.faults.analysis import analyze as analyze_faults
from testbed.experiment.faults.inject import FaultInjector
from testbed.experiment.group import scenario_seed
from testbed.experiment.host_cpu import PROC_STAT
from testbed.experiment.lifecycle import Interrupts, bounded, describe
from testbed.experiment.loop import Progress as Progress
from testbed.experiment.loop import Running, SampleLoop, TickHook
from testbed.experiment.panel_feed import PanelFeed, proxy_states, scaling_events
from testbed.experiment.sampler import PromQuantiles, Sampler
from testbed.experiment.spec import Experiment
from testbed.experiment.summary import summarize
from testbed.local import processes
from testbed.local.noise import NoiseHog
from testbed.local.prometheus import (
    CpuExporter,
    LocalPrometheus,
    PromQuery,
    graph_link,
    targets,
)
from testbed.local.rules import (
    LOCAL_NAMESPACE,
    P99_BY_POD_RULE,
    P99_RULE,
    chart_queries,
    prometheus_duration,
    with_quantile,
)
from testbed.local.state import RunRegistry, TestbedState
from testbed.local.testbed import PROXY_KIND, LocalTestbed
from testbed.sample import Sample
from testbed_messages.experiment import ExperimentInfo, ProxyStateName

log = logging.getLogger(__name__)


class ExperimentFailed(RuntimeError):
    """The run could not be done; `folder` holds what it wrote (summary.json says why)."""

    def __init__(self, message: str, folder: Path | None = None) -> None:
        super().__init__(message)
        self.folder = folder


@dataclass
class Prepared:
    csv: Path
    summary: ScenarioSummary
    proxies: int
    pods: list[tuple[int, int]]


def prepare(experiment: Experiment, out: Path) -> Prepared:
    """The scenario file (copied or generated), what it needs, and the proxy count."""
    target = out / "scenario.csv"
    spec = experiment.scenario
    if spec.csv is not None:
        shutil.copyfile(spec.csv, target)
    else:
        assert spec.generate is not None
        write_file(Scenario(spec.generate), target)
    with target.open("rb") as data:
        run = validate(text_lines(data))
        defects = [str(d) for _, d in zip(range(10), run, strict=False)]
        for _ in run:
            pass
    if run.summary.defects:
        raise ExperimentFailed(
            f"{experiment.name}: scenario has {run.summary.defects} defects: " + "; ".join(defects)
        )
    summary = run.summary
    phones = max(summary.phones_per_pod, experiment.clients.phones_per_pod or 0)
    pods = (
        [(pod, phones) for pod in range(min(summary.pods), max(summary.pods) + 1)]
        if summary.pods
        else []
    )
    if experiment.proxies.count is not None:
        proxies = experiment.proxies.count
    else:
        assert experiment.proxies.plan is not None
        peak = summary.peak_rate * spec.speed
        proxies = experiment.proxies.plan.proxies_for(peak)
    return Prepared(target, summary, proxies, pods)


def load_rises(experiment: Experiment) -> list[float]:
    """When the offered load steps up (run seconds), for step and held-table scenarios."""
    generate = experiment.scenario.generate
    speed = experiment.scenario.speed
    if generate is None:
        return []
    shape = generate.shape
    if isinstance(shape, StepShape):
        if shape.step_rate <= 0:
            return []
        return [i * shape.step_every_s / speed for i in range(1, shape.steps)]
    if isinstance(shape, TableShape) and shape.interpolate == "hold":
        return [t / speed for (_t0, r0), (t, r) in itertools.pairwise(shape.points) if r > r0]
    return []


def plan_proxies(experiment: Experiment, prepared: Prepared) -> int | None:
    """The static capacity plan's proxy count, if the experiment names a plan."""
    return plan_proxies_for(experiment, prepared.summary.peak_rate * experiment.scenario.speed)


def plan_proxies_for(experiment: Experiment, peak_rate: float) -> int | None:
    """The same for a peak rate (invites/s as played, at the scenario's speed)."""
    plan = experiment.proxies.plan
    return None if plan is None else plan.proxies_for(peak_rate)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise ExperimentFailed(f"{what} not reached within {timeout:.0f} s")
        time.sleep(0.5)


def write_results(
    out: Path,
    experiment: Experiment,
    prepared: Prepared | None,
    samples: list[Sample],
    calls: list[dict[str, Any]],
    undeliverable: int,
    interrupted: bool = False,
    extra: dict[str, Any] | None = None,
    end: RunEnd | None = None,
    counted: tuple[int, int] | None = None,
) -> None:
    """timeseries.csv, summary.json (with `extra` fields) and the report: the end of every run,
    local or on a cluster, however it ended (`end`: status and reason). summary.json is
    written before the report, so a report that fails still leaves it. `counted`: the calls
    as (succeeded, failed) counts where there are no per-call records (a simulated run)."""
    if end is None:
        end = (
            RunEnd(INTERRUPTED, "interrupted (Ctrl-C)")
            if interrupted
            else RunEnd(COMPLETED, "the scenario finished")
        )
    write_csv(out / "timeseries.csv", [sample.row() for sample in samples])
    summary = summarize(
        samples,
        calls,
        undeliverable,
        experiment.qos.p0_ms,
        experiment.qos.percentile,
        interrupted,
        rises_s=load_rises(experiment),
        plan_proxies=None if prepared is None else plan_proxies(experiment, prepared),
        status=end.status,
        end_reason=end.reason,
        counted=counted,
    )
    data = {
        "experiment": experiment.name,
        "seed": experiment.seed,
        "scenario_seed": scenario_seed(experiment),
        **(extra or {}),
        "proxies": None if prepared is None else prepared.proxies,
        "cpu": experiment.proxies.cpu,
        **summary.as_dict(),
    }
    if end.status == FAILED:
        data["error"] = end.reason
    faults = analyze_faults(out, experiment.qos.p0_ms)  # from faults.csv, when the run had one
    if faults:
        data["faults"] = [impact.as_dict() for impact in faults]
    path = out / "summary.json"
    path.write_text(json.dumps(data, indent=2))
    try:
        from testbed.experiment.report import write_report  # matplotlib: seconds to import

        write_report(out, experiment, summary)
    except Exception as exc:
        data.setdefault("cleanup_errors", []).append(f"report: {describe(exc)}")
        path.write_text(json.dumps(data, indent=2))


# After the loop, each step bounded on its own (seconds): a hung component costs its bound.
STOP_RUN_S = 10.0
FAULTS_LIFT_S = 60.0
AUTOSCALER_STOP_S = 150.0
COLLECT_BUDGET_S = 300.0


class LocalRun:
    """One experiment on the local testbed, from the scenario to the results folder."""

    def __init__(
        self,
        experiment: Experiment,
        out: Path,
        progress: Progress,
        settings: TestbedSettings,
        summary_extra: dict[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.experiment = experiment
        self.clock = clock or RealClock()
        self.summary_extra = summary_extra or {}
        self.out = out
        self.progress = progress
        # runs keep their testbed in the results folder; the user's state directory records
        # it there until it is stopped, so `testbed down` finds what a killed run left
        self.registry = RunRegistry(settings.testbed_state_dir)
        self.settings = settings.model_copy(
            update={"testbed_state_dir": out / "testbed", "database_url": None}
        )
        self.testbed = LocalTestbed(self.settings, notify=self.note)
        self.http = httpx.Client(timeout=10)
        self.prepared: Prepared | None = None
        self.sampler: Sampler | None = None
        self.autoscaler: LocalAutoscaler | None = None
        self.faults: FaultInjector | None = None
        self.run_id: str | None = None
        # the bearer header of the testbed's services, once `up` generated its token
        self.auth: dict[str, str] = {}
        self.samples: list[Sample] = []
        self.timeseries: CsvStream | None = None
        self.autoscaler_log: CsvStream | None = None
        # the panel's Experiment tab (best effort: panel_feed.py); autoscaler.csv rows offered
        self.panel: PanelFeed | None = None
        self._events_offered = 0
        self.tick_hooks: list[TickHook] = []
        self.end: RunEnd | None = None
        self.calls: list[dict[str, Any]] = []
        self.undeliverable = 0
        self.unread: dict[str, str] = {}
        self.cleanup_errors: list[str] = []
        self.noise: NoiseHog | None = None
        self.noise_record: dict[str, Any] | None = None
        self.isolation: dict[str, Any] | None = None
        self.prometheus: LocalPrometheus | None = None
        self.cpu_exporter: CpuExporter | None = None
        self.promql: PromQuery | None = None
        # column or input -> the PromQL it came from (summary.json, report.html)
        self.queries: dict[str, str] = {}

    def note(self, message: str) -> None:
        self.show(message, None)

    def show(self, phase: str, running: Running | None) -> None:
        """Progress for the terminal: a display that fails (its terminal gone with SIGHUP)
        must not stop the run, nor its cleanup."""
        try:
            self.progress(phase, running)
        except Exception as exc:
            log.warning("progress display failed: %s", describe(exc))

    # -- the run -------------------------------------------------------------------------------

    def execute(self) -> Path:
        """Always stops what it started and writes summary.json; raises ExperimentFailed
        (naming the folder) when the run failed."""
        with Interrupts(self.note) as interrupts:
            try:
                self.end = self._play()
            except KeyboardInterrupt:
                self.end = RunEnd(
                    INTERRUPTED, f"interrupted by {interrupts.received or 'SIGINT'}{self._at()}"
                )
                self.note(f"{self.end.reason}: stopping and keeping what was collected")
            except Exception as exc:
                self.end = RunEnd(FAILED, f"{describe(exc)}{self._at()}")
                (self.out / "error.txt").write_text(traceback.format_exc())
                self.note(f"failed: {self.end.reason}; stopping and keeping what was collected")
            finally:
                interrupts.cleaning()  # from here on, signals are reported, not raised
                self._clean_up()
                self._write()
        if self.end.status == FAILED:
            raise ExperimentFailed(self.end.reason, folder=self.out)
        return self.out

    def _at(self) -> str:
        return f" at t={self.samples[-1].t_s:.0f} s" if self.samples else ""

    def _play(self) -> RunEnd:
        experiment, settings = self.experiment, self.settings
        self.note("preparing the scenario")
        prepared = self.prepared = prepare(experiment, self.out)
        self.timeseries = CsvStream(self.out / "timeseries.csv")
        me = processes.handle_of(os.getpid())
        assert me is not None
        self.registry.add(self.testbed.state_dir, me, self.out)
        if experiment.noise is not None:  # an outside process: before the testbed, not in it
            noise = self.noise = NoiseHog(
                experiment.noise.share,
                experiment.noise.cpu_set() if experiment.noise.cpus else None,
                self.out / "noise.log",
            )
            self.note(
                f"noise: a hog of {noise.share:g} core on CPUs {experiment.noise.cpus or 'all'}"
            )
            noise.start()
        self.note(f"starting {prepared.proxies} proxies and {len(prepared.pods)} client pods")
        self.testbed.up(
            prepared.proxies,
            experiment.proxies.millicores,
            experiment.db,
            analyzers=True,
            scenario_controller=True,
            clients=prepared.pods,
            isolation=experiment.isolation.chosen(),
        )
        state = self._state()
        self.auth = api_token.bearer(state.api_token) if state.api_token else {}
        record = state.isolation
        self.isolation = record.model_dump() if record is not None else None
        if self.testbed.join_others():  # the runner and its sampler threads: off the SUT's CPUs
            self.note("this run's own process moved to the other processes' CPUs")
        self._start_prometheus()
        scenario_url = settings.scenario_controller_url
        self._register(scenario_url, sum(p for _pod, p in prepared.pods))
        with prepared.csv.open("rb") as data:
            self.http.post(
                f"{scenario_url}/scenarios",
                params={"name": experiment.name},
                content=data.read(),
                headers=self.auth,
            ).raise_for_status()
        self._let_registrations_leave_the_window()
        sampler = self.sampler = Sampler(
            self.http,
            experiment.qos.window_s,
            experiment.qos.percentile,
            scenario_url,
            settings.lb_rpc_url,
            self._quantiles(),
            host_stat=PROC_STAT.read_text,
            token=state.api_token,
        )
        sampler.sample(self._state())  # windows start here, not with the registrations
        if experiment.autoscale is not None:
            self._start_autoscaler()
        if experiment.faults:  # run time of the faults is the time series' t_s
            injector = self.faults = FaultInjector(
                self.testbed,
                experiment.faults,
                self.out,
                lambda: time.monotonic() - sampler.start,
                self.note,
                experiment.seed,
            )
            self.tick_hooks.append(lambda _now, sample: injector.tick(sample) or sample)
        run = self.http.post(
            f"{scenario_url}/runs",
            json={
                "scenario": experiment.name,
                "speed": experiment.scenario.speed,
                "hold_ms": experiment.scenario.hold_ms,
            },
            headers=self.auth,
        )
        run.raise_for_status()
        self.run_id = sampler.run_id = str(run.json()["id"])
        duration = prepared.summary.duration_s / experiment.scenario.speed
        self._start_panel_feed(scenario_url, duration)
        drain = experiment.drain_s + experiment.scenario.hold_ms / 1000
        watch = EndWatch(
            self.clock.now(),
            duration,
            drain,
            deadline_margin(duration),
            origin=sampler.start,
        )

        def read() -> Sample:
            state = self._state()
            sample = sampler.sample(state)
            self._refresh_targets(state)  # file_sd targets from the pool as it is now
            return sample

        loop = SampleLoop(
            self.clock,
            read,
            self.tick_hooks,
            lambda sample: self._record(sample, duration),
            watch,
            experiment.sample_interval_s,
            origin=sampler.start,
            problem=lambda: sampler.problems.get("scenario-controller"),
        )
        return loop.run()

    def _start_panel_feed(self, scenario_url: str, duration: float) -> None:
        experiment = self.experiment
        try:
            info = ExperimentInfo(
                name=experiment.name[:100],
                run_id=str(self.out),
                source="run",
                p0_ms=experiment.qos.p0_ms,
                percentile=experiment.qos.percentile,
                cpu_millicores=experiment.proxies.millicores,
                duration_s=duration,
                folder=str(self.out),
            )
        except ValueError as exc:  # the panel is a view: the run goes on without it
            self.note(f"warning: the panel will not show this run: {describe(exc)}")
            return
        self.panel = PanelFeed(scenario_url, self.auth, info, self._proxy_states)
        self.panel.start()

    def _proxy_states(self) -> dict[str, ProxyStateName]:
        """The panel feed's thread asks: the pool's file and the scaler's view, no request."""
        state = self.testbed.load_state()
        proxies = state.of_kind(PROXY_KIND) if state is not None else []
        readiness = self.autoscaler.scaler.readiness() if self.autoscaler is not None else None
        return proxy_states(proxies, readiness)

    def _offer_to_panel(self, sample: Sample) -> None:
        if self.panel is None:
            return
        try:
            events = []
            if self.autoscaler_log is not None:
                new = self.autoscaler_log.rows[self._events_offered :]
                self._events_offered += len(new)
                events = scaling_events(new)
            self.panel.offer(sample, events)
        except Exception as exc:  # the panel is a view: it never costs the run anything
            log.debug("panel feed: %s", describe(exc))

    def _start_prometheus(self) -> None:
        """The run's Prometheus (testbed.local.prometheus): the chart's recording rules over
        qos.window_s, every component's /metrics and the proxies' cgroup CPU as targets."""
        experiment, settings = self.experiment, self.settings
        queries = chart_queries(settings.chart_dir, experiment.qos.window_s)
        exporter = self.cpu_exporter = CpuExporter(self.testbed.load_state, LOCAL_NAMESPACE)
        exporter.start()
        prometheus = self.prometheus = LocalPrometheus(
            self.out / "prometheus", settings.prometheus_binary
        )
        prometheus.write_config(
            prometheus_duration(experiment.metrics.scrape_interval_s), queries.rules_text
        )
        self._refresh_targets(self._state())
        self.note(f"starting Prometheus on {prometheus.url}")
        prometheus.start(self.http)
        self.promql = PromQuery(prometheus.url, self.http)
        q = experiment.qos.percentile / 100
        overall, by_pod = queries.recorded[P99_RULE], queries.recorded[P99_BY_POD_RULE]
        if q != 0.99:
            overall, by_pod = with_quantile(overall, q), with_quantile(by_pod, q)
        self.queries.update({"p99_ms": overall, "<pod>.p99_ms": by_pod})

    def _let_registrations_leave_the_window(self) -> None:
        """Prometheus's windows reach back qos.window_s: a REGISTER answered seconds late (a
        CPU-starved proxy) would count in the run's first windows as its worst p99. So the
        scenario starts once one window and a scrape have passed since the registrations (the
        windows hold only the run's own traffic from its first row on, as they did when the
        sampler computed them from its first sample)."""
        if self.promql is None:
            return
        settle = self.experiment.registration_settle_s
        self.note(f"waiting {settle:g} s for the registrations to leave the p99 window")
        time.sleep(settle)

    def _quantiles(self) -> PromQuantiles | None:
        if self.promql is None:
            return None
        return PromQuantiles(self.promql, self.queries["p99_ms"], self.queries["<pod>.p99_ms"])

    def _refresh_targets(self, state: TestbedState) -> None:
        """file_sd targets from the pool as it is now (scaling, supervisor restarts)."""
        if self.prometheus is not None and self.cpu_exporter is not None:
            self.prometheus.set_targets(targets(state, LOCAL_NAMESPACE, self.cpu_exporter.address))

    def _stop_prometheus(self) -> None:
        if self.cpu_exporter is not None:
            self.cpu_exporter.stop()
        if self.prometheus is not None and not self.prometheus.stop():
            raise RuntimeError(f"Prometheus (pid {self.prometheus.handle}) did not stop")

    def _prometheus_summary(self) -> dict[str, Any] | None:
        """Where the TSDB is, the run's time range and the queries used, with links to the
        graph page of `testbed prometheus RESULTS` (default port 9090)."""
        if self.prometheus is None or not self.samples:
            return None
        start, end = self.samples[0].time, self.samples[-1].time
        served = "http://127.0.0.1:9090"
        return {
            "tsdb": str(self.prometheus.data.relative_to(self.out)),
            "serve": f"testbed prometheus {self.out}",
            "start": start,
            "end": end,
            "scrape_interval_s": self.experiment.metrics.scrape_interval_s,
            "queries": [
                {"for": what, "expr": expr, "graph": graph_link(served, expr, start, end)}
                for what, expr in self.queries.items()
            ],
        }

    def _register(self, scenario_url: str, phones: int) -> None:
        self.note(f"registering {phones} phones")
        self.http.post(f"{scenario_url}/register", headers=self.auth).raise_for_status()

        def registered() -> bool:
            # Both sides: the location table can hold a contact whose 200 OK is still being
            # retransmitted to a phone behind a starved proxy; such a REGISTER would complete
            # seconds later inside the first QoS window and count as the run's worst p99.
            users = self.http.get(f"{self.settings.controller_url}/registrations").json()
            pods = self.http.get(f"{scenario_url}/clients").json().get("pods", [])
            on_phones = sum(int(pod.get("registered", 0)) for pod in pods)
            return len(users.get("users", [])) >= phones and on_phones >= phones

        _wait(registered, self.experiment.register_timeout_s, f"all {phones} phones registered")

    def _start_autoscaler(self) -> None:
        spec, prepared = self.experiment.autoscale, self.prepared
        assert spec is not None
        assert prepared is not None
        parallel = spec.pod_management == "parallel"
        metrics = None
        if self.promql is not None:
            # the adapter's and KEDA's queries over autoscale.metric_window_s
            queries = chart_queries(self.settings.chart_dir, spec.metric_window_s)
            metrics = PrometheusMetrics(self.promql, queries, spec.scrape_interval_s, self.note)
            for what, expr in metrics.expressions(frozenset({"<pod>"})).items():
                self.queries[f"autoscaler {what}"] = expr
        autoscaler = self.autoscaler = LocalAutoscaler(
            spec,
            build_policy(spec, self.experiment.qos.p0_ms, self.experiment.proxies.millicores),
            lambda n: self.testbed.scale(PROXY_KIND, n, parallel=parallel),
            prepared.proxies,
            self.note,
            (self.settings.autoscaler_metrics_host, self.settings.autoscaler_metrics_port),
            metrics,
        )
        log = self.autoscaler_log = CsvStream(self.out / "autoscaler.csv", AUTOSCALER_COLUMNS)

        def tick(now: float, sample: Sample) -> Sample:
            written = len(log.rows)
            sample = autoscaler.tick(now, sample)
            for event in autoscaler.log_rows(written):
                log.append(event)
            return sample

        self.tick_hooks.append(tick)
        autoscaler.start()

    def _record(self, sample: Sample, duration: float) -> None:
        """One sample as the hooks left it: kept, written, offered to the panel, shown."""
        self.samples.append(sample)
        assert self.timeseries is not None
        self.timeseries.append(sample.row())
        self._offer_to_panel(sample)
        self.show("running", Running(sample, duration))

    def _state(self) -> TestbedState:
        state = self.testbed.load_state()
        if state is None:
            raise ExperimentFailed(
                f"the testbed's state in {self.testbed.state_dir} is gone (stopped by "
                "`testbed down`?)"
            )
        return state

    # -- the ending ----------------------------------------------------------------------------

    def _step(self, what: str, step: Callable[[], object], seconds: float | None = None) -> None:
        """A cleanup step: its failure is recorded, and the next steps run regardless."""
        if seconds is not None:
            problem = bounded(what, step, seconds)
        else:
            try:
                step()
                problem = None
            except Exception as exc:
                problem = f"{what}: {describe(exc)}"
        if problem:
            self.cleanup_errors.append(problem)
            self.note(f"warning: {problem}")

    def _clean_up(self) -> None:
        scenario_url = self.settings.scenario_controller_url
        panel = self.panel
        if panel is not None:  # the end shown while the controller still runs
            end = self.end or RunEnd(FAILED, "unknown")
            self._step("closing the panel feed", lambda: panel.close(end.status, end.reason))
        faults = self.faults
        if faults is not None:  # first: stopped processes resumed, packet rules removed

            def lift_faults() -> None:
                self.cleanup_errors.extend(faults.close())

            self._step("lifting the faults", lift_faults, FAULTS_LIFT_S)
        if self.run_id and (self.end is None or self.end.status != COMPLETED):
            run_id = self.run_id

            def stop_run() -> None:
                self.http.post(f"{scenario_url}/runs/{run_id}/stop", headers=self.auth, timeout=5.0)

            self._step("stopping the scenario", stop_run, STOP_RUN_S)
        if self.sampler is not None:
            self._step("closing the sampler", self.sampler.close)
        if self.autoscaler is not None:
            self.note("stopping the autoscaler")
            self._step("stopping the autoscaler", self.autoscaler.stop, AUTOSCALER_STOP_S)
        if self.prometheus is not None or self.cpu_exporter is not None:
            self._step("stopping Prometheus", self._stop_prometheus)
        for stream in (self.timeseries, self.autoscaler_log):
            if stream is not None:
                self._step(f"closing {stream.path.name}", stream.close)
        noise = self.noise
        if noise is not None:

            def stop_noise() -> None:
                self.noise_record = noise.stop()
                self.cleanup_errors.extend(self.noise_record.get("cleanup_errors", []))

            self._step("stopping the noise", stop_noise)
        self.note("collecting samples, call records and the run log")
        budget = Budget(COLLECT_BUDGET_S)

        def collect() -> None:
            self.calls = collect_local(
                self.testbed.load_state(), self.http, self.out, budget, self.unread
            )

        def run_log() -> None:
            try:
                timeout = budget.timeout()
            except BudgetSpent:
                timeout = 5.0  # a last short try: the run log is what validates the replay
            self.undeliverable = fetch_run_log(
                self.http, scenario_url, self.run_id, self.out, self.unread, timeout
            )

        self._step("collecting samples and call records", collect)
        self._step("fetching the run log", run_log)
        self._step("writing empty data files", lambda: ensure_files(self.out))
        self.note("stopping the testbed")
        stopped: list[str] = []

        def down() -> None:
            self.testbed.leave_isolation()
            stopped.extend(self.testbed.down())
            self.registry.remove(self.testbed.state_dir)  # kept when down failed

        self._step("stopping the testbed", down)
        self._step("closing connections", self.testbed.close)
        self._step("closing connections", self.http.close)

    def _write(self) -> None:
        assert self.end is not None
        extra: dict[str, Any] = {"end_reason": self.end.reason, **self.summary_extra}
        if self.unread:
            extra["unread"] = self.unread
        if self.sampler is not None and self.sampler.failures:
            extra["unanswered_requests"] = dict(self.sampler.failures)
        if self.cleanup_errors:
            extra["cleanup_errors"] = self.cleanup_errors
        extra["isolation"] = self.isolation  # as applied (None: the testbed never came up)
        if self.experiment.noise is not None:
            extra["noise"] = {**self.experiment.noise.model_dump(), **(self.noise_record or {})}
        prometheus = self._prometheus_summary()
        if prometheus is not None:
            extra["prometheus"] = prometheus
        try:
            write_results(
                self.out,
                self.experiment,
                self.prepared,
                self.samples,
                self.calls,
                self.undeliverable,
                self.end.status == INTERRUPTED,
                extra,
                end=self.end,
            )
        except Exception as exc:
            # the last resort: the status and the error, even without a report
            self.end = RunEnd(FAILED, f"{self.end.reason}; writing the results: {describe(exc)}")
            (self.out / "summary.json").write_text(
                json.dumps(
                    {
                        "experiment": self.experiment.name,
                        **extra,
                        "status": FAILED,
                        "end_reason": self.end.reason,
                        "error": self.end.reason,
                    },
                    indent=2,
                )
            )


AUTOSCALER_COLUMNS = (
    "t_s",
    "target_before",
    "target_after",
    "ready",
    "reason",
    # the inputs the policy read: from where (prometheus), of which Unix time, the values
    "metrics_source",
    "metrics_time",
    "p99_all_s",
    "invite_rate",
    "p99_s",
    "cpu_cores",
)


def new_results_folder(
    results_root: Path,
    experiment: Experiment,
    experiment_file: Path | None,
    folder_name: str | None = None,
    suffix: str = "",
) -> Path:
    """A run's folder, `folder_name` or `<name><suffix>-<time>`, with the experiment as given
    (experiment.yaml), as validated (experiment.json) and its HPA manifest (hpa.yaml)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = (results_root / (folder_name or f"{experiment.name}{suffix}-{stamp}")).resolve()
    out.mkdir(parents=True, exist_ok=False)
    if experiment_file is not None:
        shutil.copyfile(experiment_file, out / "experiment.yaml")
    (out / "experiment.json").write_text(experiment.model_dump_json(indent=2))
    if experiment.autoscale is not None and experiment.autoscale.policy in ("hpa", "hybrid"):
        (out / "hpa.yaml").write_text(yaml.safe_dump(experiment.autoscale.manifest()))
    return out


def run_experiment(
    experiment: Experiment,
    experiment_file: Path | None,
    results_root: Path,
    progress: Progress,
    settings: TestbedSettings | None = None,
    folder_name: str | None = None,
    summary_extra: dict[str, Any] | None = None,
) -> Path:
    """Play `experiment` on the local testbed; returns the results folder (`folder_name` in
    `results_root`, by default `<name>-<time>`). The run ends when the scenario does, at its
    deadline (deadline.py), or on Ctrl-C, SIGTERM or SIGHUP; its summary.json says which
    (with `summary_extra`'s fields). Raises ExperimentFailed, naming the folder, when it
    failed."""
    out = new_results_folder(results_root, experiment, experiment_file, folder_name)
    run = LocalRun(experiment, out, progress, settings or TestbedSettings(), summary_extra)
    return run.execute()
