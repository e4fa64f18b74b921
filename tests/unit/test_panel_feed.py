"""The runner's push to the panel (testbed.experiment.panel_feed): rows become the panel's
samples, the proxies' states come from the pool and the scaler, and the push is best effort:
it reaches a live scenario controller, resends what a restarted one lost, and a controller
that is down or hangs costs the run nothing."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from api_token import bearer
from scaling_policy.policy import Readiness
from scenario_controller.config import Settings
from scenario_controller.main import create_app
from testbed.experiment.panel_feed import (
    BadValue,
    PanelFeed,
    proxy_states,
    scaling_events,
    to_sample,
)
from testbed.local import processes
from testbed.local.state import Component
from testbed.sample import Clients, ProxyReading, ScenarioRun
from testbed.sample import Sample as TakenSample
from testbed_messages.experiment import ExperimentInfo

TOKEN = "test-token-of-the-panel-feed-tests"
INFO = ExperimentInfo(name="tiny", run_id="results/tiny-1", p0_ms=1000, cpu_millicores=20)


def row(t: float, **more: Any) -> dict[str, Any]:
    """A row as the runner's sampler makes it (one proxy, every column it writes)."""
    return {
        "t_s": t,
        "time": 1796232850.0 + t,
        "proxies": 1,
        "replicas": 1,
        "sip-proxy-0.invites_per_s": 2.0,
        "sip-proxy-0.invite_requests_per_s": 4.0,
        "sip-proxy-0.cpu_mcpu": 7.5,
        "sip-proxy-0.p99_ms": 3.0,
        "p99_ms": 3.0,
        "lb_invites_per_s": 2.0,
        "run_state": "running",
        "calls_succeeded_per_s": 2.0,
        "calls_failed_per_s": 0.0,
        **more,
    }


def taken(t: float) -> TakenSample:
    """The same as the runner's typed sample: the feed converts it with its row()."""
    return TakenSample(
        t_s=t,
        time=1796232850.0 + t,
        proxies=1,
        replicas=1,
        per_proxy=(
            ProxyReading(
                "sip-proxy-0",
                invites_per_s=2.0,
                invite_requests_per_s=4.0,
                cpu_mcpu=7.5,
                latency_percentile_ms=3.0,
            ),
        ),
        latency_percentile_ms=3.0,
        lb_invites_per_s=2.0,
        scenario=ScenarioRun(
            scheduled=0, sent_per_s=None, undeliverable_per_s=None, run_state="running"
        ),
        clients=Clients(calls_succeeded_per_s=2.0, calls_failed_per_s=0.0, registered=1),
    )


def test_a_typed_sample_reaches_the_panel_as_its_row_would() -> None:
    assert to_sample(taken(3.0).row()) == to_sample(row(3.0))


# -- rows to samples ---------------------------------------------------------------------------


def test_a_runner_row_and_its_csv_form_give_the_same_sample():
    live = to_sample(row(3.0, **{"sip-proxy-1.cpu_mcpu": None, "sip-proxy-1.p99_ms": None}))
    as_csv = to_sample(
        {k: "" if v is None else str(v) for k, v in row(3.0, **{"sip-proxy-1.p99_ms": ""}).items()}
    )
    assert live == as_csv
    assert live.t_s == 3.0
    assert (live.proxies, live.replicas, live.lb_invites_per_s) == (1, 1, 2.0)
    # a proxy with no value in the row was not there (not started yet, or gone)
    assert list(live.per_proxy) == ["sip-proxy-0"]
    assert live.per_proxy["sip-proxy-0"].model_dump() == {
        "p99_ms": 3.0,
        "cpu_mcpu": 7.5,
        "invites_per_s": 2.0,
    }


def test_nan_is_not_measured_and_bad_cells_name_their_column():
    assert to_sample(row(1.0, p99_ms=float("nan"))).p99_ms is None
    with pytest.raises(
        BadValue, match=re.escape("column sip-proxy-0.p99_ms: 'fast' is not a number")
    ):
        to_sample(row(1.0, **{"sip-proxy-0.p99_ms": "fast"}))
    with pytest.raises(BadValue, match=re.escape("column replicas: '1.5' is not a count")):
        to_sample(row(1.0, replicas="1.5"))
    with pytest.raises(BadValue, match="column t_s: missing"):
        to_sample({"proxies": "2"})


def test_only_the_syncs_that_changed_the_target_are_scaling_events():
    events = scaling_events(
        [
            {"t_s": "15.2", "target_before": "2", "target_after": "2", "reason": "headroom"},
            {"t_s": "30.4", "target_before": "2", "target_after": "3", "reason": "qos: p99 over"},
            {"t_s": "45.1", "target_before": "3", "target_after": "2", "reason": "calm"},
        ]
    )
    assert [(e.t_s, e.before, e.after, e.reason) for e in events] == [
        (30.4, 2, 3, "qos: p99 over"),
        (45.1, 3, 2, "calm"),
    ]


def test_proxy_states_from_the_pool_and_the_scaler():
    me = processes.handle_of(os.getpid())
    assert me is not None
    alive = {"pid": me.pid, "start_ticks": me.start_ticks}

    def proxy(index: int, **process: Any) -> Component:
        return Component(name=f"sip-proxy-{index}", kind="sip-proxy", index=index, **process)

    pool = [proxy(0, **alive), proxy(1, **alive), proxy(2, **alive), proxy(3)]
    readiness = Readiness({"sip-proxy-0": 1.0}, frozenset({"sip-proxy-2", "sip-proxy-4"}))
    assert proxy_states(pool, readiness) == {
        "sip-proxy-0": "ready",
        "sip-proxy-1": "draining",  # runs, out of the ready set: being taken out
        "sip-proxy-2": "starting",  # started, being enabled
        "sip-proxy-3": "dead",  # no process
        "sip-proxy-4": "starting",  # asked for, not created yet
    }
    # without an autoscaler every running proxy serves
    assert proxy_states(pool, None) == {
        "sip-proxy-0": "ready",
        "sip-proxy-1": "ready",
        "sip-proxy-2": "ready",
        "sip-proxy-3": "dead",
    }


# -- the push ------------------------------------------------------------------------------


class Controller:
    """A real scenario controller under uvicorn on 127.0.0.1:`port` (0: a free one)."""

    def __init__(self, base: Path, port: int = 0) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        settings = Settings(
            scenario_dir=base / "scenarios",
            runs_dir=base / "runs",
            sip_controller_url="",
            api_token=TOKEN,
        )
        config = uvicorn.Config(create_app(settings, CollectorRegistry()), log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def held(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.url}/experiment", timeout=5).json()
        return answer

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    c = Controller(tmp_path / "one")
    yield c
    c.stop()


def wait_until(predicate: Any, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"{what} within {within} s"
        time.sleep(0.05)


def test_rows_states_and_events_reach_the_panel_and_the_end_too(controller: Controller):
    feed = PanelFeed(controller.url, bearer(TOKEN), INFO, lambda: {"sip-proxy-0": "ready"})
    feed.start()
    for t in range(5):
        feed.offer(taken(float(t)))
    wait_until(lambda: controller.held()["held"] == 5, "5 samples held")
    event = scaling_events([{"t_s": 5.5, "target_before": 1, "target_after": 2, "reason": "r"}])
    feed.offer(taken(6.0), event)
    feed.close("completed", "the scenario finished")
    held = controller.held()
    assert [s["t_s"] for s in held["samples"]] == [0, 1, 2, 3, 4, 6]
    assert held["experiment"]["status"] == "completed"
    assert held["experiment"]["end_reason"] == "the scenario finished"
    assert held["proxies"] == [
        {"name": "sip-proxy-0", "state": "ready", "first_t_s": 0.0, "last_t_s": 6.0}
    ]
    assert [(e["before"], e["after"]) for e in held["events"]] == [(1, 2)]
    assert not feed._thread.is_alive()


def test_a_restarted_controller_gets_the_backlog_again(tmp_path: Path):
    first = Controller(tmp_path / "one")
    port = first.port
    feed = PanelFeed(first.url, bearer(TOKEN), INFO, dict, max_backoff_s=0.2)
    feed.start()
    try:
        for t in range(3):
            feed.offer(taken(float(t)))
        wait_until(lambda: first.held()["held"] == 3, "3 samples held")
        first.stop()  # a fault killed it; the run goes on
        feed.offer(taken(3.0))
        feed.offer(taken(4.0))
        second = Controller(tmp_path / "two", port)  # restarted, empty
        try:
            feed.offer(taken(5.0))
            wait_until(lambda: second.held()["held"] == 6, "the backlog resent")
            assert [s["t_s"] for s in second.held()["samples"]] == [0, 1, 2, 3, 4, 5]
        finally:
            feed.close("completed", None)
            second.stop()
    finally:
        first.stop()


def test_a_refused_token_costs_nothing_and_is_not_held(controller: Controller):
    wrong = bearer("a-wrong-token-of-the-right-length")
    feed = PanelFeed(controller.url, wrong, INFO, dict, max_backoff_s=0.2)
    feed.start()
    feed.offer(taken(0.0))
    wait_until(lambda: feed.failures >= 1, "the push refused")
    feed.close("completed", None)
    assert (feed.pushes, controller.held()["held"]) == (0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nothing listens", "accepts and never answers"])
def test_a_controller_that_is_down_or_hung_never_slows_the_run(kind: str):
    """offer() returns at once whatever the other side does, and close() is bounded."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if kind == "nothing listens":
        sock.close()
    else:
        sock.listen(16)  # the kernel completes handshakes; nobody ever reads or answers
    feed = PanelFeed(f"http://127.0.0.1:{port}", bearer(TOKEN), INFO, dict, timeout_s=1.0)
    feed.start()
    try:
        worst = 0.0
        for t in range(2000):  # half an hour of rows, more than the queue keeps
            started = time.perf_counter()
            feed.offer(taken(float(t)))
            worst = max(worst, time.perf_counter() - started)
        # blocking on the network would take the 1 s timeout; a loaded machine can stall a
        # thread for a few hundred ms (CI measured 0.36 s), which is not what this checks
        assert worst < 0.8
        time.sleep(1.5)  # pushes are being tried meanwhile
        started = time.monotonic()
        feed.close("completed", None, within_s=3.0)
        assert time.monotonic() - started < 3.5
        assert feed.pushes == 0
        assert feed.failures >= 1
        assert len(feed._pending) + len(feed._history) <= 2 * 3600  # bounded
    finally:
        sock.close()
