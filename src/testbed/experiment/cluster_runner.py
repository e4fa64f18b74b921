"""`testbed run EXPERIMENT.yaml --kubeconfig FILE`: the same experiment on a Kubernetes cluster.

The umbrella chart is installed in a namespace of the run's own with the experiment's values
(proxies and their CPU limit, the HPA from the experiment's manifest, client pods and phones,
the chart's own Prometheus scraping at the sample interval); the phones register and the
scenario is replayed through the scenario controller's API; every row is sampled from the
cluster's Prometheus; the analyzers' samples, the pods' call records and the run log are
fetched; the release and its namespace are removed whatever happened; and the same results
folder and report as a local run are written.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

import api_token
from testbed.cluster.access import PortForward, kubectl_command
from testbed.cluster.layout import REPO_ROOT
from testbed.experiment.cluster_sampler import ClusterSampler, proxy_column
from testbed.experiment.loop import Progress, Running
from testbed.experiment.runner import (
    ExperimentFailed,
    Prepared,
    fetch_run_log,
    prepare,
    write_calls,
    write_results,
)
from testbed.experiment.spec import Experiment
from testbed.local.prometheus import PromQuery
from testbed.sample import Sample

CHART = REPO_ROOT / "helm" / "ims-testbed"
RELEASE = "tb"


class ClusterTools:
    """kubectl and helm with one kubeconfig."""

    def __init__(self, kubeconfig: Path, kubectl: Path, helm: Path) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl_bin = kubectl
        self.helm_bin = helm

    @property
    def kubectl_cmd(self) -> list[str]:
        return kubectl_command(self.kubectl_bin, self.kubeconfig)

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        result = subprocess.run(
            [*self.kubectl_cmd, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise ExperimentFailed(f"kubectl {' '.join(args[:4])}: {result.stderr.strip()}")
        return result.stdout

    def helm(self, *args: str, timeout: float = 900) -> str:
        result = subprocess.run(
            [str(self.helm_bin), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise ExperimentFailed(f"helm {args[0]}: {result.stderr.strip()[-3000:]}")
        return result.stdout


def hpa_values(experiment: Experiment) -> dict[str, Any]:
    """The chart's `autoscaling` values from the experiment's HPA manifest (the metrics the
    chart can render: CPU as a Resource metric)."""
    assert experiment.autoscale is not None
    if experiment.autoscale.policy != "hpa":
        raise ExperimentFailed(
            f"autoscale.policy {experiment.autoscale.policy}: only the HPA and the predictive "
            "policy run on a cluster (capacity, qos and hybrid are local mode's autoscaler)"
        )
    spec = experiment.autoscale.manifest().get("spec", {})
    values: dict[str, Any] = {
        "minReplicas": spec.get("minReplicas", 1),
        "maxReplicas": spec["maxReplicas"],
    }
    if "behavior" in spec:
        values["behavior"] = spec["behavior"]
    cpu = None
    for metric in spec.get("metrics", []):
        if metric.get("type") == "Resource" and metric["resource"]["name"] == "cpu":
            cpu = metric["resource"]["target"]
        else:
            raise ExperimentFailed(
                f"HPA metric {metric.get('type')}: only the Resource cpu metric is rendered "
                "by the chart for `testbed run --kubeconfig`"
            )
    if cpu is None:
        raise ExperimentFailed("the HPA manifest has no Resource cpu metric")
    # the proxy container's CPU, as the local HPA reads a proxy's cgroup (not the sidecar's)
    values["cpu"] = {"enabled": True, "metric": "ContainerResource", "target": cpu}
    return values


def predictive_values(experiment: Experiment) -> dict[str, Any]:
    """The chart's `policyController` values from the experiment's predictive section: the
    controller's environment (POLICY_CONTROLLER_<KNOB>), which computes the same lead time
    from the same settings; the proxies' CPU limit comes from the chart's sip-proxy.resources."""
    autoscale = experiment.autoscale
    assert autoscale is not None
    assert autoscale.predictive is not None
    knobs = autoscale.predictive.model_dump()
    ready_delay_s = knobs.pop("ready_delay_s")
    settings: dict[str, Any] = {
        "p0_ms": experiment.qos.p0_ms,
        **knobs,
        "ready_delay_s": ready_delay_s,
        "startup_delay_s": autoscale.startup_delay_s,
        "sync_period_s": autoscale.sync_period_s,
    }
    return {"env": {f"POLICY_CONTROLLER_{k.upper()}": str(v) for k, v in settings.items()}}


def chart_values(
    experiment: Experiment, prepared: Prepared, local_images: bool, namespace: str
) -> dict[str, Any]:
    proxy: dict[str, Any] = {"replicas": prepared.proxies}
    if experiment.proxies.cpu is not None:
        # request = limit: the HPA's AverageValue target compares usage, not a share
        proxy["resources"] = {
            "requests": {"cpu": experiment.proxies.cpu, "memory": "64Mi"},
            "limits": {"cpu": experiment.proxies.cpu, "memory": "384Mi"},
        }
    pods = max((pod for pod, _ in prepared.pods), default=-1) + 1
    phones = max((phones for _, phones in prepared.pods), default=1)
    values: dict[str, Any] = {
        "global": {"sipProxy": {"autoscaler": "none"}},
        "sip-proxy": proxy,
        "sip-client": {"replicas": max(pods, 1), "env": {"PHONES": str(phones)}},
        "prometheus": {
            "enabled": True,
            "scrapeInterval": f"{max(1, round(experiment.sample_interval_s))}s",
        },
        "monitoring": {"dashboard": {"enabled": False}},
    }
    if experiment.autoscale is not None and experiment.autoscale.policy == "predictive":
        values["global"]["sipProxy"]["autoscaler"] = "predictive"
        values["autoscaling"] = {
            "minReplicas": experiment.autoscale.min_replicas,
            "maxReplicas": experiment.autoscale.max_replicas,
        }
        values["policyController"] = predictive_values(experiment)
    elif experiment.autoscale is not None:
        values["global"]["sipProxy"]["autoscaler"] = "hpa"
        values["autoscaling"] = hpa_values(experiment)
        # the HPA starts from the experiment's initial count
        proxy["replicas"] = prepared.proxies
    if local_images:
        values["global"].update(
            {"imageRegistry": "localhost/ims-testbed", "imagePullPolicy": "Never"}
        )
        # the single-node cluster has no storage provisioner
        values["database"] = {"mariadb": {"projectImage": True, "persistence": {"enabled": False}}}
    return values


@contextlib.contextmanager
def _forwards(
    tools: ClusterTools, namespace: str, predictive: bool = False
) -> Iterator[dict[str, str]]:
    targets = {
        "scenario": (f"svc/{RELEASE}-scenario-controller", 8001),
        "controller": (f"svc/{RELEASE}-sip-controller", 8000),
        "prometheus": (f"svc/{RELEASE}-prometheus", 9090),
    }
    if predictive:
        targets["policy"] = (f"svc/{RELEASE}-policy-controller", 8095)
    with contextlib.ExitStack() as stack:
        urls = {
            key: stack.enter_context(PortForward(tools.kubectl_cmd, namespace, target, port)).url
            for key, (target, port) in targets.items()
        }
        yield urls


def _replicas(tools: ClusterTools, namespace: str) -> Callable[[], int | None]:
    last: list[tuple[float, int | None]] = [(0.0, None)]

    def read() -> int | None:
        # the StatefulSet's ready pods, read at most every 2 s (a kubectl call each)
        if time.monotonic() - last[0][0] < 2:
            return last[0][1]
        out = tools.kubectl(
            "-n",
            namespace,
            "get",
            "statefulset",
            f"{RELEASE}-sip-proxy",
            "-o",
            "jsonpath={.status.readyReplicas}",
            check=False,
            timeout=10,
        ).strip()
        value = int(out) if out.isdigit() else (0 if out == "" else None)
        last[0] = (time.monotonic(), value)
        return value

    return read


def _collect(
    tools: ClusterTools,
    namespace: str,
    urls: dict[str, str],
    http: httpx.Client,
    out: Path,
    run_id: str | None,
) -> tuple[list[dict[str, Any]], int]:
    """The analyzers' samples of the proxy pods still there, every client pod's call records,
    the run log (samples of pods the HPA removed are gone with them; their histograms are in
    Prometheus)."""
    pods = json.loads(tools.kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"]
    header_written = False
    with (out / "response_times.csv").open("w", newline="") as f:
        for pod in pods:
            name = pod["metadata"]["name"]
            if proxy_column(name) is None or pod["status"].get("phase") != "Running":
                continue
            with (
                contextlib.suppress(Exception),
                PortForward(tools.kubectl_cmd, namespace, f"pod/{name}", 9101) as fwd,
            ):
                text = http.get(
                    f"{fwd.url}/samples",
                    params={"format": "csv", "limit": 1_000_000},
                    timeout=120,
                ).text
                lines = text.splitlines(keepends=True)
                if lines:
                    if not header_written:
                        f.write(lines[0])
                        header_written = True
                    f.writelines(lines[1:])
    calls: list[dict[str, Any]] = []
    for pod in pods:
        name = pod["metadata"]["name"]
        if "-sip-client-" not in name or pod["status"].get("phase") != "Running":
            continue
        with (
            contextlib.suppress(Exception),
            PortForward(tools.kubectl_cmd, namespace, f"pod/{name}", 8090) as fwd,
        ):
            offset = 0
            while True:
                page = http.get(
                    f"{fwd.url}/calls", params={"offset": offset, "limit": 100_000}, timeout=120
                ).json()
                calls.extend(page["items"])
                offset += len(page["items"])
                if not page["items"] or offset >= page["total"]:
                    break
    write_calls(calls, out)
    undeliverable = fetch_run_log(http, urls["scenario"], run_id, out)
    return calls, undeliverable


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            if predicate():
                return
        if time.monotonic() > deadline:
            raise ExperimentFailed(f"{what} not reached within {timeout:.0f} s")
        time.sleep(1.0)


def run_on_cluster(
    experiment: Experiment,
    experiment_file: Path | None,
    results_root: Path,
    progress: Progress,
    tools: ClusterTools,
    local_images: bool,
    extra_values: list[Path] | None = None,
) -> Path:
    if experiment.faults:  # refused before anything is installed, not silently ignored
        raise ExperimentFailed(
            f"{experiment.name}: faults run on the local testbed only (docs/faults.md)"
        )
    isolation = experiment.isolation
    if (
        experiment.noise is not None
        or isolation.enabled
        or isolation.sut_cpus
        or isolation.other_cpus
    ):
        raise ExperimentFailed(
            f"{experiment.name}: isolation and noise are set on the local testbed only (a "
            "cluster keeps load generators off the proxies' nodes; docs/local-mode.md)"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = (results_root / f"{experiment.name}-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=False)
    if experiment_file is not None:
        shutil.copyfile(experiment_file, out / "experiment.yaml")
    (out / "experiment.json").write_text(experiment.model_dump_json(indent=2))
    predictive = experiment.autoscale is not None and experiment.autoscale.policy == "predictive"
    if experiment.autoscale is not None and not predictive:
        (out / "hpa.yaml").write_text(yaml.safe_dump(experiment.autoscale.manifest()))
    progress("preparing the scenario", None)
    prepared = prepare(experiment, out)
    namespace = (
        f"tb-{experiment.name.lower().replace('.', '-').replace('_', '-')[:40]}-{stamp[-6:]}"
    )
    values = chart_values(experiment, prepared, local_images, namespace)
    values_file = out / "chart-values.yaml"
    values_file.write_text(yaml.safe_dump(values, sort_keys=False))
    rows: list[Sample] = []
    hpa_log: list[dict[str, Any]] = []
    run_id: str | None = None
    interrupted = False
    calls: list[dict[str, Any]] = []
    undeliverable = 0
    http = httpx.Client(timeout=10)
    timings: dict[str, float] = {}
    try:
        progress(f"installing the chart in namespace {namespace}", None)
        start = time.monotonic()
        args = [
            "install",
            RELEASE,
            str(CHART),
            "-n",
            namespace,
            "--create-namespace",
            "-f",
            str(values_file),
            "--wait",
            "--timeout",
            "10m",
        ]
        for extra in extra_values or []:
            args += ["-f", str(extra)]
        tools.helm(*args)
        timings["helm_install_s"] = round(time.monotonic() - start, 1)
        (out / "pods.txt").write_text(tools.kubectl("-n", namespace, "get", "pods", "-o", "wide"))
        with _forwards(tools, namespace, predictive) as urls:
            prom = PromQuery(urls["prometheus"], http, timeout=5.0)
            _wait(prom.ready, 60, "Prometheus ready")
            scenario_url = urls["scenario"]
            auth = api_token.bearer(_api_token(tools, namespace))
            phones = sum(p for _pod, p in prepared.pods)
            progress(f"registering {phones} phones", None)
            http.post(f"{scenario_url}/register", headers=auth).raise_for_status()

            def registered() -> bool:
                users = http.get(f"{urls['controller']}/registrations").json().get("users", [])
                pods = http.get(f"{scenario_url}/clients").json().get("pods", [])
                on_phones = sum(int(pod.get("registered", 0)) for pod in pods)
                return len(users) >= phones and on_phones >= phones

            _wait(registered, experiment.register_timeout_s, f"all {phones} phones registered")
            with prepared.csv.open("rb") as data:
                http.post(
                    f"{scenario_url}/scenarios",
                    params={"name": experiment.name},
                    content=data.read(),
                    headers=auth,
                ).raise_for_status()
            sampler = ClusterSampler(
                prom,
                http,
                namespace,
                experiment.qos.window_s,
                experiment.qos.percentile,
                scenario_url,
                _replicas(tools, namespace),
            )
            sampler.sample()  # the baseline for the rates
            run = http.post(
                f"{scenario_url}/runs",
                json={
                    "scenario": experiment.name,
                    "speed": experiment.scenario.speed,
                    "hold_ms": experiment.scenario.hold_ms,
                },
                headers=auth,
            )
            run.raise_for_status()
            run_id = run.json()["id"]
            duration = prepared.summary.duration_s / experiment.scenario.speed
            finished_at: float | None = None
            try:
                while True:
                    sample = sampler.sample()
                    rows.append(sample)
                    if predictive:
                        # every decision of the policy controller (it syncs slower than this)
                        hpa_log.append({"t_s": sample.t_s, **_policy_status(http, urls["policy"])})
                    elif experiment.autoscale is not None and len(rows) % 5 == 1:
                        hpa_log.append({"t_s": sample.t_s, **_hpa_status(tools, namespace)})
                    progress("running", Running(sample, duration))
                    if sample.run_state not in (None, "running", "paused"):
                        finished_at = finished_at or time.monotonic()
                        drain = experiment.drain_s + experiment.scenario.hold_ms / 1000
                        if time.monotonic() - finished_at >= drain:
                            break
                    elapsed = time.monotonic() - sampler.start - sample.t_s
                    time.sleep(max(0.0, experiment.sample_interval_s - elapsed))
            except KeyboardInterrupt:
                interrupted = True
                progress("interrupted: stopping and keeping what was collected", None)
                with contextlib.suppress(httpx.HTTPError):
                    http.post(f"{scenario_url}/runs/{run_id}/stop", headers=auth)
            progress("collecting samples, call records and the run log", None)
            calls, undeliverable = _collect(tools, namespace, urls, http, out, run_id)
            if experiment.autoscale is not None:
                (out / "hpa-events.json").write_text(
                    tools.kubectl(
                        "-n",
                        namespace,
                        "get",
                        "events",
                        "--field-selector",
                        f"involvedObject.name={RELEASE}-sip-proxy",
                        "-o",
                        "json",
                        check=False,
                    )
                )
    finally:
        progress(f"removing the release and namespace {namespace}", None)
        with contextlib.suppress(Exception):
            tools.helm("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "5m")
        with contextlib.suppress(Exception):
            tools.kubectl("delete", "namespace", namespace, "--wait=true", check=False, timeout=300)
        http.close()
    if hpa_log:
        with (out / "autoscaler.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(hpa_log[0]))
            writer.writeheader()
            writer.writerows(hpa_log)
    write_results(
        out,
        experiment,
        prepared,
        rows,
        calls,
        undeliverable,
        interrupted,
        {"platform": "kubernetes", "namespace": namespace, **timings},
    )
    return out


def _api_token(tools: ClusterTools, namespace: str) -> str:
    """The release's API token, from the Secret the chart generated at install."""
    name = f"{RELEASE}-api-token"
    secret = json.loads(tools.kubectl("-n", namespace, "get", "secret", name, "-o", "json"))
    try:
        value = base64.b64decode(secret["data"]["api-token"], validate=True).decode()
    except (KeyError, TypeError, ValueError) as exc:  # the message only: no secret bytes
        raise ExperimentFailed(
            f"secret {name}: no base64 UTF-8 value under key api-token ({type(exc).__name__})"
        ) from None
    try:
        return api_token.validate(value)
    except ValueError as exc:  # validate's message never contains the token
        raise ExperimentFailed(f"secret {name}, key api-token: {exc}") from None


def _policy_status(http: httpx.Client, url: str) -> dict[str, Any]:
    """The policy controller's last decision (its GET /status), in autoscaler.csv's columns."""
    try:
        status = http.get(f"{url}/status", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {"current": None, "desired": None, "reason": "policy controller unreachable"}
    return {k: status.get(k) for k in ("current", "desired", "reason")}


def _hpa_status(tools: ClusterTools, namespace: str) -> dict[str, Any]:
    out = tools.kubectl(
        "-n",
        namespace,
        "get",
        "hpa",
        f"{RELEASE}-sip-proxy",
        "-o",
        "json",
        check=False,
        timeout=10,
    )
    try:
        status = json.loads(out)["status"]
    except (ValueError, KeyError):
        return {"current": None, "desired": None}
    return {"current": status.get("currentReplicas"), "desired": status.get("desiredReplicas")}
