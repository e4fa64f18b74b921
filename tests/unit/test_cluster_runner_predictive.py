"""`testbed run --kubeconfig` with the predictive policy: the chart's policy controller gets the
experiment's knobs under the names its settings read, and no HPA is rendered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_controller.config import Settings
from scenario_csv.validator import ScenarioSummary
from service_kit.settings import env_variables
from testbed.experiment.cluster_runner import chart_values
from testbed.experiment.runner import Prepared
from testbed.experiment.spec import load

ROOT = Path(__file__).resolve().parents[2]


def _values(name: str, *overrides: str) -> dict[str, Any]:
    experiment = load(ROOT / "experiments" / name, list(overrides))
    prepared = Prepared(Path("scenario.csv"), ScenarioSummary(), 2, [(0, 100)])
    return chart_values(experiment, prepared, local_images=True, namespace="tb-x")


def test_the_predictive_experiment_runs_the_charts_policy_controller() -> None:
    values = _values(
        "step-predictive.yaml",
        "autoscale.predictive.knee_per_proxy=12",
        "autoscale.min_replicas=1",
        "autoscale.max_replicas=4",
        "qos.p0_ms=800",
    )
    assert values["global"]["sipProxy"]["autoscaler"] == "predictive"
    assert values["autoscaling"] == {"minReplicas": 1, "maxReplicas": 4}
    env = values["policyController"]["env"]
    assert env["POLICY_CONTROLLER_KNEE_PER_PROXY"] == "12.0"
    assert env["POLICY_CONTROLLER_P0_MS"] == "800.0"
    # every knob of the lead time goes over, so the controller computes the local run's
    for knob in ("STARTUP_DELAY_S", "READY_DELAY_S", "SYNC_PERIOD_S", "CPU_KNEE", "CPU_CEILING"):
        assert f"POLICY_CONTROLLER_{knob}" in env
    # and each is a setting of the controller (an unknown name would be ignored silently)
    assert set(env) <= set(env_variables(Settings))


def test_an_hpa_experiment_still_renders_the_hpa() -> None:
    values = _values("step-hpa-25m.yaml")
    assert values["global"]["sipProxy"]["autoscaler"] == "hpa"
    assert "policyController" not in values
