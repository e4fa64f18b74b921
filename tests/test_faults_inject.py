"""The fault injector on real processes (no testbed: a state file naming `sleep` processes),
driven by a clock the test moves: SIGSTOP and SIGCONT, SIGKILL, and teardown lifting what is
still in force."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from testbed.config import TestbedSettings
from testbed.experiment.faults.inject import FaultInjector
from testbed.experiment.faults.spec import FaultSpec
from testbed.local import processes
from testbed.local.processes import ProcessHandle
from testbed.local.state import Component, TestbedState
from testbed.local.testbed import LocalTestbed


def _events(folder: Path) -> list[dict[str, str]]:
    with (folder / "faults.csv").open() as f:
        return list(csv.DictReader(f))


def _proc_state(handle: ProcessHandle) -> str:
    raw = Path(f"/proc/{handle.pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()[0]


@pytest.fixture
def testbed(tmp_path: Path):
    # nothing listens on port 9: the injector's controller queries fail at once
    settings = TestbedSettings(testbed_state_dir=tmp_path / "state", sip_controller_port=9)
    testbed = LocalTestbed(settings)
    handles: list[ProcessHandle] = []
    state = TestbedState(database_url="sqlite:///x", database_kind="sqlite")
    for name in ("sip-loadb", "sip-controller"):
        handle = processes.spawn([shutil.which("sleep") or "sleep", "300"], {}, tmp_path / name)
        handles.append(handle)
        state.put(Component(name=name, kind=name, pid=handle.pid, start_ticks=handle.start_ticks))
    testbed.store.save(state)
    yield testbed, dict(zip(("sip-loadb", "sip-controller"), handles, strict=True))
    for handle in handles:
        processes.stop(handle, timeout=2)
    testbed.close()


def test_stop_freezes_the_process_group_for_its_window_and_kill_ends_it(testbed, tmp_path):
    bed, handles = testbed
    now = [0.0]
    faults = [
        FaultSpec(action="stop", target="sip-loadb", at_s=1, duration_s=2),
        FaultSpec(action="kill", target="sip-controller", at_s=4),
    ]
    injector = FaultInjector(bed, faults, tmp_path, lambda: now[0])
    row: dict[str, object] = {}
    for t, loadb, controller in ((0.5, "S", "S"), (1.0, "T", "S"), (3.0, "S", "S")):
        now[0] = t
        injector.tick(row)
        injector.wait_idle()
        assert (_proc_state(handles["sip-loadb"]), _proc_state(handles["sip-controller"])) == (
            loadb,
            controller,
        ), t
    now[0] = 4.0
    injector.tick(row)
    injector.wait_idle()
    processes.stop(handles["sip-controller"], timeout=1)  # reap the child
    assert not handles["sip-controller"].alive()
    assert row["proxies_serving"] is None  # the controller did not answer
    assert injector.close() == []
    events = [(e["index"], e["phase"], e["t_s"]) for e in _events(tmp_path)]
    assert events == [("0", "apply", "1.0"), ("0", "lift", "3.0"), ("1", "apply", "4.0")]


def test_teardown_resumes_what_is_still_stopped(testbed, tmp_path):
    bed, handles = testbed
    now = [10.0]
    injector = FaultInjector(
        bed, [FaultSpec(action="stop", target="sip-loadb", at_s=5, duration_s=600)],
        tmp_path, lambda: now[0],
    )  # fmt: skip
    injector.tick()
    injector.wait_idle()
    assert _proc_state(handles["sip-loadb"]) == "T"
    assert injector.close() == []
    assert _proc_state(handles["sip-loadb"]) == "S"
    phases = [e["phase"] for e in _events(tmp_path)]
    assert phases == ["apply", "lift"]


def test_a_fault_on_a_missing_component_is_an_error_event_not_a_crash(testbed, tmp_path):
    bed, _handles = testbed
    injector = FaultInjector(
        bed, [FaultSpec(action="kill", target="sip-proxy-3", at_s=0)], tmp_path, lambda: 1.0
    )
    injector.tick()
    injector.wait_idle()
    assert injector.close() == []
    (event,) = _events(tmp_path)
    assert event["phase"] == "error"
    assert "sip-proxy-3 is not running in this testbed" in event["detail"]
