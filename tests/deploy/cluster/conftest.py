"""One real single-node cluster for the cluster tests (testbed cluster up / down).

It comes up once per session in a directory of the session's own (so a developer's cluster is
untouched), with the testbed's images loaded, and goes down at the end; the test of `down`
itself checks that the host is as it was. A cluster left behind by a killed session (its
processes gone, its bridge, mounts and sysctls not) is taken down first, as `up` does.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.cluster import hoststate
from testbed.cluster.cluster import Cluster, recover_stale
from testbed.cluster.images import built_images, load
from testbed.cluster.layout import REPO_ROOT, ClusterSettings

TIMINGS: dict[str, float] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tests that kill the cluster's processes run after every other test that uses it
    items.sort(key=lambda item: item.get_closest_marker("kills_cluster") is not None)


@pytest.fixture(scope="session")
def host_before() -> hoststate.HostSnapshot:
    """The host before the session's cluster (after taking down a stale one)."""
    settings = ClusterSettings()
    recover_stale(settings, print)
    if Path(f"/sys/class/net/{settings.bridge}").exists():
        pytest.fail(
            f"a cluster is already up on this machine ({settings.bridge} exists): "
            "take it down with `testbed cluster down` before running the cluster tests"
        )
    return hoststate.snapshot(settings.cgroup_root)


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, host_before: hoststate.HostSnapshot
) -> Iterator[Cluster]:
    settings = ClusterSettings(dir=tmp_path_factory.mktemp("cluster"))
    before = host_before
    cluster = Cluster(settings, say=print)
    start = time.monotonic()
    try:
        cluster.up()
        TIMINGS["cluster up"] = time.monotonic() - start
        start = time.monotonic()
        subprocess.run([str(REPO_ROOT / "docker" / "build.sh")], check=True, capture_output=True)
        TIMINGS["images built"] = time.monotonic() - start
        start = time.monotonic()
        load(cluster, built_images())
        TIMINGS["images loaded"] = time.monotonic() - start
        yield cluster
    finally:
        start = time.monotonic()
        report = cluster.down()
        TIMINGS["cluster down"] = time.monotonic() - start
        print("cluster down:", report, "timings:", TIMINGS)
        # `down` put the host back: the same sysctls, iptables, links; no mount, cgroup or
        # process of the cluster left (a teardown error otherwise)
        after = hoststate.snapshot(settings.cgroup_root)
        assert after.sysctls == before.sysctls
        assert after.iptables == before.iptables
        assert after.iptables_rules == before.iptables_rules
        assert after.links == before.links
        assert not after.cgroup_root_existed
        assert hoststate.mounts_under(settings.dir) == []
        assert not any(h.alive() for h in cluster._handles().values())


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Path:
    return cluster.kubectl_path()
