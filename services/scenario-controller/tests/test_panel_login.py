"""The panel's API-token prompt in a real browser (Chromium, installed by scripts/setup.sh)
against the live controller (conftest.py): a wrong token is refused with a message and asked
again, the right one uploads and starts a run, "forget token" drops it. The token lives in
sessionStorage only: never in the URL, never a cookie."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--disable-gpu", "--no-first-run", "--disable-background-networking"]
HEADER = "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s"
STORED = "sessionStorage.getItem('ims-testbed-api-token')"


@pytest.fixture
def page(live) -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(live.url)
            page.wait_for_selector("#feed.on")  # the read-only feed needs no token
            yield page
        finally:
            browser.close()


def log_in(page: Page, token: str) -> None:
    page.wait_for_selector("#login", state="visible")
    page.fill("#token-input", token)
    page.click("#token-submit")
    page.wait_for_selector("#login", state="hidden")


def upload(page: Page, csv: Path) -> None:
    page.set_input_files("#upload-file", str(csv))
    page.click("#upload-button")


@pytest.mark.slow
def test_the_panel_asks_for_the_token_refuses_a_wrong_one_and_works_with_the_right_one(
    live, page: Page, tmp_path: Path
):
    csv = tmp_path / "login-demo.csv"
    csv.write_text(
        HEADER
        + "\n"
        + "".join(f"02{i % 100:02d};03{i % 100:02d};100;{i // 10};10\n" for i in range(600))
    )
    assert page.is_visible("#login")  # asked at once: nothing is stored yet
    assert page.inner_text("#auth-state") == "no API token"

    page.fill("#token-input", "too-short")
    page.click("#token-submit")
    assert "at least 16" in page.inner_text("#login-message")
    assert page.evaluate(STORED) is None

    log_in(page, "a-wrong-token-of-the-right-length")
    upload(page, csv)
    page.wait_for_selector("#login", state="visible")  # refused: asked again
    assert "403" in page.inner_text("#login-message")
    assert "wrong API token" in page.inner_text("#upload-result")
    assert page.evaluate(STORED) is None  # the token that did not work is gone
    assert live.http.get("/scenarios").json() == []

    log_in(page, live.token)
    assert page.inner_text("#auth-state") == "API token set"
    upload(page, csv)
    page.wait_for_selector("#upload-result .ok")
    assert [s["name"] for s in live.http.get("/scenarios").json()] == ["login-demo"]
    page.click("#start")
    page.wait_for_function("document.getElementById('run-state').textContent.startsWith('running')")
    assert live.http.get("/runs/current").json()["state"] == "running"
    assert page.evaluate(STORED) == live.token
    assert live.token not in page.url
    assert page.evaluate("document.cookie") == ""
    assert page.context.cookies() == []

    page.click("#forget-token")
    assert page.evaluate(STORED) is None
    assert page.is_visible("#login")
    page.click("#login-cancel")  # watch only
    page.click("#stop")
    page.wait_for_selector("#login", state="visible")
    assert "401" in page.inner_text("#login-message")
    assert "missing bearer token" in page.inner_text("#run-error")
    assert live.http.get("/runs/current").json()["state"] == "running"  # not stopped
