"""The fault injector on real processes (no testbed: a state file naming `sleep` processes),
driven by a clock the test moves: SIGSTOP and SIGCONT, SIGKILL, and teardown lifting what is
still in force."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import pytest

from testbed.config import TestbedSettings
from testbed.experiment.faults.inject import FaultInjector
from testbed.experiment.faults.spec import FaultSpec
from testbed.local import processes
from testbed.local.processes import ProcessHandle
from testbed.local.state import Component, TestbedState
from testbed.local.testbed import LocalTestbed
from testbed.sample import Sample, Serving


def _events(folder: Path) -> list[dict[str, str]]:
    with (folder / "faults.csv").open() as f:
        return list(csv.DictReader(f))


def _proc_state(handle: ProcessHandle) -> str:
    raw = Path(f"/proc/{handle.pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()[0]


def _stopped(handle: ProcessHandle, want: bool) -> bool:
    """Whether the process is stopped (T), once it has acted on its signals: a busy machine
    may take a moment to schedule it."""
    deadline = time.monotonic() + 10
    while (_proc_state(handle) == "T") != want and time.monotonic() < deadline:
        time.sleep(0.02)
    return _proc_state(handle) == "T"


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
    sample = Sample(t_s=0.0, proxies=1)
    for t, loadb_stopped in ((0.5, False), (1.0, True), (3.0, False)):
        now[0] = t
        injector.tick(sample)
        injector.wait_idle()
        assert _stopped(handles["sip-loadb"], loadb_stopped) == loadb_stopped, t
        assert not _stopped(handles["sip-controller"], False), t
    now[0] = 4.0
    ticked = injector.tick(sample)
    injector.wait_idle()
    processes.stop(handles["sip-controller"], timeout=1)  # reap the child
    assert not handles["sip-controller"].alive()
    assert ticked is not None
    assert ticked.serving == Serving(None)  # the controller did not answer
    assert ticked.row()["proxies_serving"] is None  # the column is there, empty
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
    assert _stopped(handles["sip-loadb"], True)
    assert injector.close() == []
    assert not _stopped(handles["sip-loadb"], False)
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
