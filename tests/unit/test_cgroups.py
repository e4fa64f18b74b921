"""CPU-limit logic on fake cgroup trees (v1 and v2); the real v1/v2 tree is exercised by
test_local_cli.py on whatever this machine has."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testbed.local import cgroups


@pytest.mark.parametrize(
    ("text", "millicores"),
    [("30m", 30), ("250m", 250), ("0.5", 500), ("1", 1000), ("2", 2000), (" 1.5 ", 1500)],
)
def test_parse_millicores(text, millicores):
    assert cgroups.parse_millicores(text) == millicores


@pytest.mark.parametrize("text", ["", "m", "30 mCPU", "-1", "0m", "0.0001", "1e3"])
def test_parse_millicores_rejects(text):
    with pytest.raises(ValueError, match="CPU quantity"):
        cgroups.parse_millicores(text)


def _fake_v2(root: Path) -> Path:
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("memory\n")
    return root


def test_v2_writes_cpu_max_and_enables_the_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    root = _fake_v2(tmp_path / "cg")
    driver = cgroups.detect(root)
    assert isinstance(driver, cgroups.CgroupV2)

    # a real kernel creates these files in a new group; the fake tree writes them itself
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        for name in ("cgroup.subtree_control", "cgroup.procs"):
            if not (self / name).exists():
                (self / name).write_text("")

    monkeypatch.setattr(Path, "mkdir", mkdir)
    group = driver.create("sip-proxy-0", 30)
    assert (root / "ims-testbed" / "sip-proxy-0" / "cpu.max").read_text() == "3000 100000"
    assert (root / "cgroup.subtree_control").read_text() == "+cpu"
    assert (root / "ims-testbed" / "cgroup.subtree_control").read_text() == "+cpu"
    group.attach_self()
    assert (root / "ims-testbed" / "sip-proxy-0" / "cgroup.procs").read_text() == str(os.getpid())
    (root / "ims-testbed" / "sip-proxy-0" / "cpu.stat").write_text(
        "usage_usec 2500000\nuser_usec 1\n"
    )
    assert group.usage_seconds() == pytest.approx(2.5)


def test_v1_with_separate_cpuacct_hierarchy(tmp_path: Path):
    cpu = tmp_path / "cpu"
    acct = tmp_path / "cpuacct"
    cpu.mkdir()
    acct.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("-1")
    (acct / "cpuacct.usage").write_text("0")
    driver = cgroups.detect(tmp_path)
    assert isinstance(driver, cgroups.CgroupV1)
    group = driver.create("sip-proxy-1", 250)
    assert (cpu / "ims-testbed" / "sip-proxy-1" / "cpu.cfs_quota_us").read_text() == "25000"
    assert (cpu / "ims-testbed" / "sip-proxy-1" / "cpu.cfs_period_us").read_text() == "100000"
    assert group.paths == (
        cpu / "ims-testbed" / "sip-proxy-1",
        acct / "ims-testbed" / "sip-proxy-1",
    )
    (acct / "ims-testbed" / "sip-proxy-1" / "cpuacct.usage").write_text("1500000000\n")
    assert group.usage_seconds() == pytest.approx(1.5)


def test_no_cgroup_filesystem_means_no_driver(tmp_path: Path):
    assert cgroups.detect(tmp_path) is None


def test_v2_without_cpu_controller_means_no_driver(tmp_path: Path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("memory pids\n")
    assert cgroups.detect(root) is None
