"""The machine-wide claim of the cluster's bridge, and taking down a stale cluster: a
directory's cluster with no live process is taken down from what the claim recorded; one with a
live process is left alone."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from testbed.cluster import hoststate
from testbed.cluster.cluster import processes_of, read_claim, recover_stale
from testbed.cluster.layout import ClusterSettings


def _settings(tmp_path: Path) -> ClusterSettings:
    return ClusterSettings(
        dir=tmp_path / "cluster",
        claim_file=tmp_path / "run" / "claim.json",
        cgroup_root="/ims-testbed-claim-test-none",
        bridge="imstbclaim0",
    )


def _claim(settings: ClusterSettings, root: Path) -> None:
    host = hoststate.snapshot(settings.cgroup_root).to_json()
    settings.claim_file.parent.mkdir(parents=True, exist_ok=True)
    settings.claim_file.write_text(json.dumps({"dir": str(root), "host": host, "bins": ""}))


def test_without_a_claim_there_is_nothing_to_recover(tmp_path: Path) -> None:
    assert recover_stale(_settings(tmp_path), print) is None


def test_a_broken_claim_file_counts_as_none(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.claim_file.parent.mkdir(parents=True)
    settings.claim_file.write_text("{not json")
    assert read_claim(settings.claim_file) is None
    settings.claim_file.write_text('{"dir": 3}')
    assert read_claim(settings.claim_file) is None


def test_a_cluster_with_a_live_process_is_left_alone(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    root = tmp_path / "running"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "x").touch()
    _claim(settings, root)
    # a process naming a file of the directory, as every component does
    sleeper = subprocess.Popen(["tail", "-f", str(root / "logs" / "x")])
    try:
        # Popen can return before the child has exec'd tail (its command line is still this
        # interpreter's until then): on a busy machine the first look finds nothing
        deadline = time.monotonic() + 10
        while processes_of(root) != [sleeper.pid] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_of(root) == [sleeper.pid]
        assert recover_stale(settings, print) is None
        assert settings.claim_file.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert processes_of(root) == []


def test_a_dead_cluster_whose_directory_went_is_taken_down_from_the_claim(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    root = tmp_path / "gone"
    _claim(settings, root)
    said: list[str] = []
    report = recover_stale(settings, said.append)
    assert report is not None
    assert report["mounts_left"] == []
    assert report["cgroups_left"] == []
    assert report["iptables_failures"] == []
    assert report["sysctls_restored"] == {}  # the claim recorded the host as it is
    assert not settings.claim_file.exists()
    assert not (root / "state.json").exists()
    assert any("has no process left" in m for m in said)
