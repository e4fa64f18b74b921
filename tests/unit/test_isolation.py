"""Isolation logic: CPU lists, the default split, spec validation, and the cpuset drivers on
fake trees (v2 cannot be exercised on a v1 machine); test_isolation_local.py uses the real one."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support import ROOT

from testbed.experiment.benchmark import BenchmarkSpec
from testbed.experiment.spec import ExperimentError, IsolationSpec, NoiseSpec, load
from testbed.local import cpusets

EXPERIMENTS = ROOT / "experiments"


@pytest.mark.parametrize(
    ("text", "cpus", "formatted"),
    [
        ("0", (0,), "0"),
        ("0-1", (0, 1), "0-1"),
        ("0-1,3", (0, 1, 3), "0-1,3"),
        (" 5,0-2 ,7-8\n", (0, 1, 2, 5, 7, 8), "0-2,5,7-8"),
        ("1,1,2", (1, 2), "1-2"),
    ],
)
def test_cpu_lists_round_trip(text: str, cpus: tuple[int, ...], formatted: str):
    assert cpusets.parse_cpu_list(text) == cpus
    assert cpusets.format_cpu_list(cpus) == formatted


@pytest.mark.parametrize("text", ["", "a", "1-", "3-1", "-1", "0,x"])
def test_bad_cpu_lists_are_refused(text: str):
    with pytest.raises(ValueError, match="CPU list"):
        cpusets.parse_cpu_list(text)


def test_default_split_one_two_four_cpus():
    one = cpusets.default_split([0])
    assert not one.enabled
    assert "only 1 CPU" in one.reason
    two = cpusets.default_split([0, 1])
    assert (two.sut_cpus, two.other_cpus) == ((1,), (0,))
    assert two.describe() == "system under test on CPU 1, everything else on CPU 0"
    four = cpusets.default_split([3, 2, 1, 0])
    assert (four.sut_cpus, four.other_cpus) == ((2, 3), (0, 1))
    three = cpusets.default_split([0, 1, 2])
    assert (three.sut_cpus, three.other_cpus) == ((1, 2), (0,))


def test_resolve_explicit_sets_and_their_errors():
    machine = (0, 1, 2, 3)
    assert cpusets.resolve(None, "3", None, machine).other_cpus == (0, 1, 2)
    assert cpusets.resolve(True, None, "0", machine).sut_cpus == (1, 2, 3)
    assert not cpusets.resolve(False, "3", None, machine).enabled
    with pytest.raises(ValueError, match="overlap on CPU 1"):
        cpusets.resolve(None, "1-2", "0-1", machine)
    with pytest.raises(ValueError, match="sut_cpus: this machine has no CPUs 4,6"):
        cpusets.resolve(None, "3-4,6", None, machine)
    with pytest.raises(ValueError, match="no CPU left for the other processes"):
        cpusets.resolve(None, "0-3", None, machine)
    with pytest.raises(ValueError, match="isolation enabled, but only 1 CPU"):
        cpusets.resolve(True, None, None, (0,))
    assert not cpusets.resolve(None, None, None, (0,)).enabled  # auto: off, and says why


def test_experiment_isolation_and_noise_validation_names_the_field():
    path = EXPERIMENTS / "demo.yaml"
    machine = cpusets.machine_cpus()
    experiment = load(path, ["noise.share=0.5"])
    assert experiment.noise is not None
    assert experiment.noise.cpu_set() == machine
    assert experiment.isolation.enabled is None  # auto
    missing = max(machine) + 1
    with pytest.raises(ExperimentError, match=rf"demo\.yaml: isolation: .*no CPU {missing}"):
        load(path, [f"isolation.sut_cpus={missing}"])
    with pytest.raises(ExperimentError, match=r"isolation: .*overlap"):
        load(path, ["isolation.sut_cpus=0", "isolation.other_cpus=0"])
    with pytest.raises(ExperimentError, match=r"noise\.share: .*greater than or equal to 0\.01"):
        load(path, ["noise.share=0"])
    with pytest.raises(ExperimentError, match=r"noise: .*no CPU"):
        load(path, [f"noise.cpus={missing}"])
    with pytest.raises(ExperimentError, match=r"isolation\.cores: Extra inputs"):
        load(path, ["isolation.cores=1"])


def test_specs_resolve_against_a_given_machine():
    assert IsolationSpec(enabled=False).plan((0, 1)).enabled is False
    assert IsolationSpec().plan((0, 1, 2, 3)).sut_cpus == (2, 3)
    assert NoiseSpec().cpu_set((0, 1)) == (0, 1)


def test_benchmark_spec_passes_isolation_and_noise_on():
    spec = BenchmarkSpec.model_validate(
        {"rates": [5], "isolation": {"enabled": False}, "noise": {"share": 1.0}}
    )
    assert spec.isolation.enabled is False
    assert spec.noise is not None
    assert spec.noise.share == 1.0


def _fake_tree_mkdir(monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> None:
    """A real kernel creates a new group's files; the fake tree writes them itself."""
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]
        for name, value in files.items():
            if not (self / name).exists():
                (self / name).write_text(value)

    monkeypatch.setattr(Path, "mkdir", mkdir)


def test_v2_driver_on_a_directory_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("cpu\n")
    _fake_tree_mkdir(
        monkeypatch, {"cgroup.subtree_control": "", "cgroup.procs": "", "cpuset.cpus": ""}
    )
    driver = cpusets.detect(root)
    assert isinstance(driver, cpusets.CpusetV2)
    sut = driver.group(cpusets.SUT, (2, 3))
    assert sut == root / "ims-testbed" / "sut"
    assert (sut / "cpuset.cpus").read_text() == "2-3"
    assert (root / "cgroup.subtree_control").read_text() == "+cpuset"
    assert (root / "ims-testbed" / "cgroup.subtree_control").read_text() == "+cpuset"
    # a proxy's CPU-limit group is its cpuset too (one group per process in v2)
    proxy = root / "ims-testbed" / "abc-sip-proxy-0"
    proxy.mkdir()
    placement = driver.confine(proxy, (2, 3))
    assert placement.paths == ()
    assert (proxy / "cpuset.cpus").read_text() == "2-3"
    cpusets.Placement((sut,)).attach_self()
    assert (sut / "cgroup.procs").read_text() == str(os.getpid())
    assert cpusets.driver_of("v2", sut).root() == root
    for name in ("cgroup.subtree_control", "cgroup.procs", "cpuset.cpus"):
        (sut / name).unlink()  # a real kernel's rmdir ignores the interface files
    assert driver.remove(cpusets.SUT) == []
    assert not sut.exists()


@pytest.mark.parametrize("prefix", ["cpuset.", ""])
def test_v1_driver_writes_mems_before_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
):
    cpuset = tmp_path / "cpuset"
    cpuset.mkdir()
    (cpuset / f"{prefix}cpus").write_text("0-3\n")
    (cpuset / f"{prefix}mems").write_text("0\n")
    _fake_tree_mkdir(monkeypatch, {f"{prefix}cpus": "", f"{prefix}mems": "", "cgroup.procs": ""})
    driver = cpusets.detect(tmp_path)
    assert isinstance(driver, cpusets.CpusetV1)
    others = driver.group(cpusets.OTHERS, (0, 1))
    parent = cpuset / "ims-testbed"
    assert (parent / f"{prefix}cpus").read_text() == "0-3"
    assert (parent / f"{prefix}mems").read_text() == "0"
    assert (others / f"{prefix}cpus").read_text() == "0-1"
    assert (others / f"{prefix}mems").read_text() == "0"
    placement = driver.confine(tmp_path / "cpu" / "ims-testbed" / "x-sip-proxy-0", (2, 3))
    assert placement.paths == (parent / "sut",)
    assert (parent / "sut" / f"{prefix}cpus").read_text() == "2-3"
    assert cpusets.driver_of("v1", others).root() == cpuset


def test_a_cluster_run_refuses_isolation_and_noise_before_installing_anything(tmp_path: Path):
    from testbed.experiment.cluster_runner import run_on_cluster
    from testbed.experiment.runner import ExperimentFailed

    for override in ("noise.share=1.0", "isolation.enabled=true"):
        experiment = load(EXPERIMENTS / "demo.yaml", [override])
        with pytest.raises(ExperimentFailed, match="local testbed only"):
            run_on_cluster(experiment, None, tmp_path, lambda _p, _r: None, None, False)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def _isolation_benchmark() -> Any:
    """benchmarks/isolation.py as a module (benchmarks/ is not a package)."""
    path = ROOT / "benchmarks" / "isolation.py"
    spec = importlib.util.spec_from_file_location("isolation_benchmark", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_isolation_benchmark_resumes_its_record_and_names_a_bad_line(tmp_path: Path):
    bench = _isolation_benchmark()
    record = tmp_path / "record.jsonl"
    record.write_text(
        '{"cell": "isolated", "kind": "capacity", "capacity": 8}\n'
        '{"cell": "shared + noise", "kind": "autoscale", "over_p0_pct": 12.5, "failed": 3,'
        ' "noise_cores": 0.97}\n'
        "\n"
        '{"cell": "isolated", "kind": "capacity", "capacity": 10}\n'
    )
    cells = [bench.Cell(i, n) for i in (True, False) for n in (False, True)]
    bench.load_record(record, cells)
    by_label = {c.label: c for c in cells}
    assert by_label["isolated"].capacity == [8.0, 10.0]
    assert by_label["shared + noise"].over_p0 == [12.5]
    assert by_label["shared + noise"].failed == [3]
    assert by_label["shared + noise"].noise_cores == [0.97]
    assert bench.spread_pct([8.0, 10.0]) == pytest.approx(2 / 9 * 100)
    with record.open("a") as f:
        f.write('{"cell": "nowhere", "kind": "capacity", "capacity": 8}\n')
    with pytest.raises(SystemExit, match=r"record.jsonl:5: not a record"):
        bench.load_record(record, [bench.Cell(i, n) for i in (True, False) for n in (False, True)])


def test_a_shield_is_asked_for_with_isolation_and_said_so():
    plan = IsolationSpec(shield=True).chosen()
    assert plan is not None
    assert plan.shield
    assert "other processes shielded" in plan.describe()
    assert IsolationSpec().chosen() is None  # the default: isolation without a shield
    with pytest.raises(ValueError, match="shield: needs isolation"):
        cpusets.resolve(None, None, None, (0,), shield=True)  # one CPU: no isolation


def test_the_shield_refuses_cgroup_v2(tmp_path: Path):
    with pytest.raises(ValueError, match="needs a cgroup v1 cpuset"):
        cpusets.sweep_into(cpusets.CpusetV2(tmp_path), tmp_path / "g", (0, 1))


def test_a_benchmark_file_takes_set_overrides(tmp_path: Path):
    from testbed.experiment.benchmark import load_benchmark
    from testbed.experiment.spec import ExperimentError

    path = tmp_path / "bench.yaml"
    path.write_text("rates: [4, 6]\n")
    spec = load_benchmark(path, ["isolation.shield=true", "noise.share=0.5"])
    assert spec.isolation.shield is True
    assert spec.noise is not None
    assert spec.noise.share == 0.5
    with pytest.raises(ExperimentError, match=r"(?s)bench\.yaml: .*isolation\.shield"):
        load_benchmark(path, ["isolation.shield=maybe"])


def test_an_interrupted_autoscale_run_ends_the_isolation_benchmark_unrecorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    bench = _isolation_benchmark()
    folder = tmp_path / "autoscale-demo-1"
    folder.mkdir()

    def interrupted_run(*_args: Any) -> Path:  # what a SIGTERM'd run leaves behind
        summary = {"status": "interrupted", "p99_violation_share": 0.0, "calls_failed": 0}
        (folder / "summary.json").write_text(json.dumps(summary))
        return folder

    monkeypatch.setattr(bench, "run_experiment", interrupted_run)
    record = tmp_path / "record.jsonl"
    args = argparse.Namespace(noise_share=1.0, autoscale_seconds=None, record=record)
    cell = bench.Cell(True, False, True)
    with pytest.raises(SystemExit, match=r"interrupted .*nothing recorded"):
        bench.run_autoscale(cell, args, tmp_path)
    assert cell.over_p0 == []
    assert cell.failed == []
    assert not record.exists()
