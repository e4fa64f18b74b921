"""The scenario controller with real sip-client pods, real Kamailio, and a real browser."""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright
from support import ROOT, ClientProcess, SipSystem, start_sip_client, wait_for

import api_token
from testbed.local import processes

pytestmark = pytest.mark.integration
SQLITE_ONLY = pytest.mark.parametrize("sip_system", ["sqlite"], indirect=True)
HOST, PORT = "127.0.0.1", 8111
URL = f"http://{HOST}:{PORT}"
WS = f"ws://{HOST}:{PORT}/ws/clients"
# the scenario controller's API_TOKEN, which its pods present too
TOKEN = api_token.generate()
AUTH = api_token.bearer(TOKEN)
HEADER = "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s"
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def scenario(pairs: list[tuple[str, str]], rate: int) -> str:
    wait = 1000 // rate
    return (
        HEADER
        + "\n"
        + "".join(f"{a};{b};{wait};{i // rate};{rate}\n" for i, (a, b) in enumerate(pairs))
    )


@pytest.fixture
def controller(sip_system: SipSystem, tmp_path: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "SCENARIO_CONTROLLER_HOST": HOST,
        "SCENARIO_CONTROLLER_PORT": str(PORT),
        "SCENARIO_DIR": str(tmp_path / "scenarios"),
        "RUNS_DIR": str(tmp_path / "runs"),
        "SIP_CONTROLLER_URL": sip_system.controller,
        api_token.ENV_NAME: TOKEN,
    }
    log = tmp_path / "scenario-controller.log"
    handle = processes.spawn([sys.executable, "-m", "scenario_controller"], env, log)
    try:
        wait_for(lambda: _up(f"{URL}/health"), 20, "scenario controller healthy")
        yield URL
    finally:
        processes.stop(handle)


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[list[ClientProcess]]:
    started: list[ClientProcess] = []
    yield started
    for pod in started:
        processes.stop(pod.handle)


def start_pod(sip_system: SipSystem, tmp_path: Path, pod: str, phones: int = 5) -> ClientProcess:
    n = int(pod)
    return start_sip_client(
        tmp_path,
        pod,
        phones,
        (f"127.0.3.{n}", 5060),
        8200 + n,
        sip_system.lb,
        TOKEN,
        SCENARIO_CONTROLLER_URL=WS,
        STATS_INTERVAL_SECONDS="0.5",
    )


def _clients(http: httpx.Client) -> dict[str, dict[str, object]]:
    return {p["pod"]: p for p in http.get(f"{URL}/clients").json()["pods"]}


def _run_log(http: httpx.Client, run_id: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(http.get(f"{URL}/runs/{run_id}/log").text)))


@SQLITE_ONLY
def test_register_upload_run_and_calls_complete(
    sip_system: SipSystem, controller: str, pods, tmp_path: Path
):
    pods += [start_pod(sip_system, tmp_path, "40"), start_pod(sip_system, tmp_path, "41")]
    with httpx.Client(timeout=30) as http:
        wait_for(lambda: http.get(f"{URL}/health").json()["pods"] == 2, 15, "both pods connected")
        refused = http.post(f"{URL}/register")  # without the token
        assert refused.status_code == 401, refused.text
        assert http.post(f"{URL}/register", headers=AUTH).json() == {"pods": ["40", "41"]}
        wait_for(
            lambda: all(p["registered"] == 5 for p in _clients(http).values()),
            15,
            "phones registered",
        )
        clients = _clients(http)
        assert clients["41"]["registered_at_proxy"] == 5  # cross-checked with the registrar
        pairs = [(f"40{i % 5:02d}", f"41{i % 5:02d}") for i in range(30)]
        stored = http.post(
            f"{URL}/scenarios", params={"name": "e2e"}, content=scenario(pairs, 10), headers=AUTH
        )
        assert stored.status_code == 201, stored.text
        run = http.post(
            f"{URL}/runs", json={"scenario": "e2e", "hold_ms": 200}, headers=AUTH
        ).json()
        wait_for(
            lambda: http.get(f"{URL}/runs/{run['id']}").json()["state"] == "finished",
            20,
            "run finished",
        )
        rows = _run_log(http, run["id"])
        assert [r["status"] for r in rows] == ["sent"] * 30
        assert max(float(r["lag_ms"]) for r in rows) < 50
        wait_for(lambda: _clients(http)["40"]["calls_succeeded"] == 30, 15, "30 calls succeeded")
        assert _clients(http)["40"]["calls_failed"] == 0


@SQLITE_ONLY
def test_a_pod_leaving_mid_run_makes_its_invites_undeliverable_until_it_returns(
    sip_system: SipSystem, controller: str, pods, tmp_path: Path
):
    steady = start_pod(sip_system, tmp_path, "42")
    leaving = start_pod(sip_system, tmp_path, "44")
    pods += [steady, leaving]
    with httpx.Client(timeout=30) as http:
        wait_for(lambda: http.get(f"{URL}/health").json()["pods"] == 2, 15, "pods connected")
        pairs = [
            (
                f"{'42' if i % 2 == 0 else '44'}{i % 5:02d}",
                f"{'43' if i % 2 == 0 else '45'}{i % 5:02d}",
            )
            for i in range(240)  # 12 s: room for a slow restart on a busy machine
        ]
        http.post(
            f"{URL}/scenarios", params={"name": "leave"}, content=scenario(pairs, 20), headers=AUTH
        ).raise_for_status()
        run = http.post(f"{URL}/runs", json={"scenario": "leave"}, headers=AUTH).json()
        time.sleep(1.0)
        processes.stop(leaving.handle)
        pods.remove(leaving)
        time.sleep(0.8)
        pods.append(start_pod(sip_system, tmp_path, "44"))
        wait_for(lambda: http.get(f"{URL}/health").json()["pods"] == 2, 15, "pod 44 back")
        assert http.get(f"{URL}/runs/{run['id']}").json()["state"] == "running"
        wait_for(
            lambda: http.get(f"{URL}/runs/{run['id']}").json()["state"] == "finished",
            20,
            "run finished",
        )
        rows = _run_log(http, run["id"])
        by_pod = {pod: [r["status"] for r in rows if r["pod"] == pod] for pod in ("42", "44")}
        assert by_pod["42"] == ["sent"] * 120  # the others carry on
        assert "undeliverable" in by_pod["44"]
        assert by_pod["44"][-1] == "sent"  # back after it reconnected
        assert http.get(f"{URL}/runs/{run['id']}").json()["undeliverable"] == by_pod["44"].count(
            "undeliverable"
        )
        back = _clients(http)["44"]
        assert back["connections"] == 2  # the hub tracked the disconnect and the reconnect
        assert back["connected"] is True


@SQLITE_ONLY
def test_the_panel_in_a_real_browser(sip_system: SipSystem, controller: str, pods, tmp_path: Path):
    pods += [start_pod(sip_system, tmp_path, "46"), start_pod(sip_system, tmp_path, "47")]
    csv_file = tmp_path / "panel-demo.csv"
    pairs = [(f"46{i % 5:02d}", f"47{i % 5:02d}") for i in range(60)]
    csv_file.write_text(scenario(pairs, 10))
    bad_file = tmp_path / "padding-bug.csv"
    bad_file.write_text(scenario([("4600", "4700"), ("700", "4700")], 10))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1300})
            page.goto(URL)
            # the panel asks for the token and keeps it in the tab's session, not the URL
            page.fill("#token-input", TOKEN)
            page.click("#token-submit")
            page.wait_for_selector("#login", state="hidden")
            assert TOKEN not in page.url
            page.wait_for_selector("#feed.on")
            page.wait_for_function("document.querySelectorAll('#pods tbody tr').length === 2")
            page.click("#register")
            page.wait_for_function(
                "document.getElementById('register-progress').textContent.startsWith('10 of 10')"
            )
            # a bad file: the defects are shown with their lines, nothing is stored
            page.set_input_files("#upload-file", str(bad_file))
            page.click("#upload-button")
            page.wait_for_selector("#upload-result .defects")
            assert "line 3: caller" in page.inner_text("#upload-result")
            page.set_input_files("#upload-file", str(csv_file))
            page.click("#upload-button")
            page.wait_for_selector("#upload-result .ok")
            assert page.input_value("#scenario-select") == "panel-demo"
            assert "60 invites" in page.inner_text("#scenario-summary")
            page.click("#start")
            page.wait_for_function("parseInt(document.getElementById('sent').textContent) >= 20")
            page.wait_for_function(
                "parseInt(document.getElementById('succeeded').textContent) >= 10"
            )
            shot = tmp_path / "panel.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("UPDATE_PANEL_SCREENSHOT"):
                shot.replace(ROOT / "docs" / "panel.png")
            page.wait_for_function(
                "document.getElementById('run-state').textContent.startsWith('finished')",
                timeout=20000,
            )
            href = page.get_attribute("#log-link", "href")
            assert href is not None
            assert href.endswith("/log")
            assert len(httpx.get(URL + href).text.splitlines()) == 61
        finally:
            browser.close()
