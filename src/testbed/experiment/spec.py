"""The experiment file (YAML): scenario, proxies, clients, QoS target, sampling."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from scenario_gen.spec import GenerateRequest, MilanoShape
from testbed.autoscale.factory import build_policy
from testbed.autoscale.spec import AutoscaleSpec
from testbed.experiment.faults.spec import FaultSpec, check_against
from testbed.local import cpusets
from testbed.quantity import cpu_millicores


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScenarioSpec(_Strict):
    """A scenario CSV (path relative to the experiment file) or csvgen parameters."""

    csv: Path | None = None
    generate: GenerateRequest | None = None
    speed: float = Field(1.0, gt=0, le=1000, description="2 replays the scenario twice as fast")
    hold_ms: int = Field(0, ge=0, description="how long every call stays up before the BYE")

    @model_validator(mode="after")
    def _one_source(self) -> ScenarioSpec:
        if (self.csv is None) == (self.generate is None):
            raise ValueError("give exactly one of scenario.csv and scenario.generate")
        return self


class CapacityPlan(_Strict):
    """proxies = ceil(peak invite rate / (capacity per proxy x headroom)), the paper's 4.3."""

    capacity_per_proxy: float = Field(gt=0, description="invites/s one proxy serves within QoS")
    headroom: float = Field(1.0, gt=0, le=1, description="plan to use this share of the capacity")

    def proxies_for(self, peak_rate: float) -> int:
        return max(1, math.ceil(peak_rate / (self.capacity_per_proxy * self.headroom) - 1e-9))


class ProxiesSpec(_Strict):
    count: int | None = Field(None, ge=1, le=100)
    plan: CapacityPlan | None = None
    cpu: str | None = Field(None, description="CPU limit per proxy, as in Kubernetes: 30m, 0.5")

    @model_validator(mode="after")
    def _one_way(self) -> ProxiesSpec:
        if self.count is None and self.plan is None:
            raise ValueError("give proxies.count or proxies.plan")
        if self.cpu is not None:
            cpu_millicores(self.cpu)
        return self

    @property
    def millicores(self) -> int | None:
        return None if self.cpu is None else cpu_millicores(self.cpu)


class ClientsSpec(_Strict):
    phones_per_pod: int | None = Field(
        None, ge=1, le=100, description="phones per pod (default: as many as the scenario uses)"
    )


class QosSpec(_Strict):
    p0_ms: float = Field(1000.0, gt=0, description="the QoS target P0")
    percentile: float = Field(99.0, gt=0, lt=100)
    window_s: float = Field(30.0, gt=0, description="metric window the percentile is taken over")


# a CPU list; YAML reads `sut_cpus: 1` as a number
CpuList = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)]


class IsolationSpec(_Strict):
    """The load balancer and proxies on CPUs of their own (docs/local-mode.md, Isolation)."""

    enabled: bool | None = Field(None, description="default (null): on with 2 or more CPUs")
    sut_cpus: CpuList | None = Field(None, description='CPUs of the LB and proxies, e.g. "1"')
    other_cpus: CpuList | None = Field(
        None, description="CPUs of everything else (default: the rest)"
    )
    shield: bool = Field(
        False,
        description="also move the machine's other processes off the SUT's CPUs while the "
        "run lasts (cgroup v1; docs/local-mode.md)",
    )

    @model_validator(mode="after")
    def _fits(self) -> IsolationSpec:
        self.plan()  # overlapping sets, CPUs this machine lacks, a bad list: said here
        return self

    def chosen(self) -> cpusets.IsolationPlan | None:
        """The plan the file asks for; None when it leaves the default to the testbed."""
        if (
            self.enabled is None
            and self.sut_cpus is None
            and self.other_cpus is None
            and not self.shield
        ):
            return None
        return self.plan()

    def plan(self, machine: tuple[int, ...] | None = None) -> cpusets.IsolationPlan:
        return cpusets.resolve(
            self.enabled,
            self.sut_cpus,
            self.other_cpus,
            machine or cpusets.machine_cpus(),
            self.shield,
        )


class NoiseSpec(_Strict):
    """A CPU hog for the whole run: a noisy neighbour (docs/experiments.md)."""

    share: float = Field(1.0, ge=0.01, le=64, description="of one core: 1.0 is a full core")
    cpus: CpuList | None = Field(None, description="its CPU set (default: all the machine's CPUs)")

    @model_validator(mode="after")
    def _fits(self) -> NoiseSpec:
        self.cpu_set()
        return self

    def cpu_set(self, machine: tuple[int, ...] | None = None) -> tuple[int, ...]:
        have = machine or cpusets.machine_cpus()
        if self.cpus is None:
            return have
        cpus = cpusets.parse_cpu_list(self.cpus)
        missing = sorted(set(cpus) - set(have))
        if missing:
            raise ValueError(
                f"cpus: this machine has no {cpusets.describe_cpus(missing)} "
                f"(it has {cpusets.format_cpu_list(have)})"
            )
        return cpus


class MetricsSpec(_Strict):
    """The run's Prometheus (docs/local-mode.md): how often it scrapes every /metrics."""

    scrape_interval_s: float = Field(
        5.0, gt=0, le=60, description="Prometheus's scrape interval (the ServiceMonitor's: 5s)"
    )


class Experiment(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")]
    description: str = ""
    scenario: ScenarioSpec
    proxies: ProxiesSpec = ProxiesSpec(count=2)
    autoscale: AutoscaleSpec | None = None
    clients: ClientsSpec = ClientsSpec()
    qos: QosSpec = QosSpec()
    metrics: MetricsSpec = MetricsSpec()
    sample_interval_s: float = Field(1.0, gt=0, le=60)
    drain_s: float = Field(3.0, ge=0, description="keep sampling after the last invite")
    # 200 phones registering at once on two 10m proxies: on a slow machine a burst's tail
    # times out (timer F, 32 s) and registers again 10-19 s later; 60 s was not enough once
    register_timeout_s: float = Field(120.0, gt=0)
    db: Literal["sqlite", "mariadb"] = "sqlite"
    seed: int = 0
    faults: list[FaultSpec] = Field(default_factory=list, description="docs/faults.md")
    isolation: IsolationSpec = IsolationSpec()
    noise: NoiseSpec | None = None

    @model_validator(mode="after")
    def _pool(self) -> Experiment:
        # autoscaled: count is where the pool starts, plan the static plan it is measured against
        if self.autoscale is None and self.proxies.count is not None and self.proxies.plan:
            raise ValueError("proxies: give one of count and plan for a fixed pool")
        generate = self.scenario.generate
        pods = (
            None
            if generate is None
            else list(range(generate.first_pod, generate.first_pod + generate.pods))
        )
        # rate() needs two scrapes inside its window, or the p99 and the rates stay empty
        scrape = self.metrics.scrape_interval_s
        windows = [("qos.window_s", self.qos.window_s)]
        if self.autoscale is not None:
            windows.append(("autoscale.metric_window_s", self.autoscale.metric_window_s))
        for field, window in windows:
            if window < 2 * scrape:
                raise ValueError(
                    f"{field} ({window:g} s) must hold at least two scrapes of "
                    f"metrics.scrape_interval_s ({scrape:g} s): make it at least {2 * scrape:g} s "
                    "or scrape more often"
                )
        problems = check_against(self.faults, self.db, self.proxies.count, pods)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def registration_settle_s(self) -> float:
        """How long the scenario waits after the phones registered: one p99 window and a
        scrape, so that no REGISTER answered late counts in the run's first windows."""
        return self.qos.window_s + self.metrics.scrape_interval_s


class ExperimentError(ValueError):
    """The experiment file cannot be used; the message names the file and field."""


def apply_override(data: dict[str, Any], override: str) -> None:
    """`a.b.c=value` (value read as YAML) sets data['a']['b']['c'], like helm's --set; a number
    picks an item of a list (`spec.metrics.0.resource.target.averageUtilization=50`)."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ExperimentError(f"--set {override}: expected KEY.PATH=VALUE")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExperimentError(f"--set {override}: value is not valid YAML: {exc}") from None
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        where = ".".join(parts[: i + 1])
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ExperimentError(
                    f"--set {override}: {'.'.join(parts[:i])} is a list of {len(node)}: "
                    f"give an index from 0 to {len(node) - 1}"
                )
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
            continue
        if last:
            node[part] = value
            return
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict | list):
            raise ExperimentError(f"--set {override}: {where} is not a mapping")
        node = child


def _inline_hpa_file(data: dict[str, Any], path: Path, overrides: list[str]) -> None:
    """Overrides inside the HPA manifest (`autoscale.hpa.<...>=`) of an experiment that names
    it by `autoscale.hpa_file`: the file's manifest is put in the experiment first."""
    if not any(o.partition("=")[0].startswith("autoscale.hpa.") for o in overrides):
        return
    autoscale = data.get("autoscale")
    if not isinstance(autoscale, dict) or "hpa" in autoscale or "hpa_file" not in autoscale:
        return
    manifest_path = Path(str(autoscale["hpa_file"]))
    if not manifest_path.is_absolute():
        manifest_path = path.parent / manifest_path
    try:
        autoscale["hpa"] = yaml.safe_load(manifest_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ExperimentError(f"{path}: autoscale.hpa_file: {exc}") from None
    del autoscale["hpa_file"]


def read_yaml(path: Path, error: type[ValueError]) -> Any:
    """The YAML document in `path`; `error` naming the file when it is missing or not YAML."""
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None


def problems(exc: ValidationError) -> str:
    """A validation error as `field.path: message; ...` ('file' for the top level)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
    )


def load(path: Path, overrides: list[str] | None = None) -> Experiment:
    data = read_yaml(path, ExperimentError)
    if not isinstance(data, dict):
        raise ExperimentError(f"{path}: expected a mapping at the top level")
    _inline_hpa_file(data, path, overrides or [])
    for override in overrides or []:
        apply_override(data, override)
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        raise ExperimentError(f"{path}: {problems(exc)}") from None
    # files named in the experiment are relative to the experiment file
    csv = experiment.scenario.csv
    if csv is not None and not csv.is_absolute():
        experiment.scenario.csv = (path.parent / csv).resolve()
    autoscale = experiment.autoscale
    if autoscale is not None and autoscale.hpa_file and not autoscale.hpa_file.is_absolute():
        autoscale.hpa_file = (path.parent / autoscale.hpa_file).resolve()
    if autoscale is not None and autoscale.policy in ("hpa", "hybrid"):
        try:  # a bad manifest fails here
            build_policy(autoscale, experiment.qos.p0_ms, experiment.proxies.millicores)
        except (ValueError, OSError) as exc:
            raise ExperimentError(f"{path}: autoscale: {exc}") from None
    generate = experiment.scenario.generate
    if generate is not None and isinstance(generate.shape, MilanoShape):
        generate.shape.files = [
            f if Path(f).is_absolute() else str((path.parent / f).resolve())
            for f in generate.shape.files
        ]
    return experiment
