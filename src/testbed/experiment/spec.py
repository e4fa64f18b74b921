"""The experiment file (YAML): scenario, proxies, clients, QoS target, sampling."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from csvgen.spec import GenerateRequest, MilanoShape
from testbed.local.cgroups import parse_millicores


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
        if (self.count is None) == (self.plan is None):
            raise ValueError("give exactly one of proxies.count and proxies.plan")
        if self.cpu is not None:
            parse_millicores(self.cpu)
        return self

    @property
    def millicores(self) -> int | None:
        return None if self.cpu is None else parse_millicores(self.cpu)


class ClientsSpec(_Strict):
    phones_per_pod: int | None = Field(
        None, ge=1, le=100, description="phones per pod (default: as many as the scenario uses)"
    )


class QosSpec(_Strict):
    p0_ms: float = Field(1000.0, gt=0, description="the QoS target P0")
    percentile: float = Field(99.0, gt=0, lt=100)
    window_s: float = Field(30.0, gt=0, description="metric window the percentile is taken over")


class Experiment(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")]
    description: str = ""
    scenario: ScenarioSpec
    proxies: ProxiesSpec = ProxiesSpec(count=2)
    clients: ClientsSpec = ClientsSpec()
    qos: QosSpec = QosSpec()
    sample_interval_s: float = Field(1.0, gt=0, le=60)
    drain_s: float = Field(3.0, ge=0, description="keep sampling after the last invite")
    register_timeout_s: float = Field(60.0, gt=0)
    db: Literal["sqlite", "mariadb"] = "sqlite"
    seed: int = 0


class ExperimentError(ValueError):
    """The experiment file cannot be used; the message names the file and field."""


def load(path: Path) -> Experiment:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise ExperimentError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ExperimentError(f"{path}: expected a mapping at the top level")
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise ExperimentError(f"{path}: {problems}") from None
    # files named in the experiment are relative to the experiment file
    csv = experiment.scenario.csv
    if csv is not None and not csv.is_absolute():
        experiment.scenario.csv = (path.parent / csv).resolve()
    generate = experiment.scenario.generate
    if generate is not None and isinstance(generate.shape, MilanoShape):
        generate.shape.files = [
            f if Path(f).is_absolute() else str((path.parent / f).resolve())
            for f in generate.shape.files
        ]
    return experiment
