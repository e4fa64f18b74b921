"""A real scenario controller under uvicorn on 127.0.0.1 (a free port), for real WebSockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from api_token import bearer
from scenario_controller.config import Settings
from scenario_controller.main import create_app

TOKEN = "test-token-of-the-scenario-controller"  # what API_TOKEN holds in these tests


class LiveController:
    def __init__(self, settings: Settings, send_buffer: int | None = None) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if send_buffer is not None:  # inherited by accepted connections (no autotuning)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/ws/clients"
        self.token = settings.api_token
        self.scenario_dir = settings.scenario_dir
        self.auth = bearer(settings.api_token) if settings.api_token else {}
        config = uvicorn.Config(
            create_app(settings, CollectorRegistry()),
            ws="websockets",  # as __main__ runs it
            ws_per_message_deflate=False,
            log_level="info",
            log_config=None,  # uvicorn's records reach the root logger (and caplog)
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        self.http = httpx.Client(base_url=self.url, timeout=5, headers=self.auth)
        self.anonymous = httpx.Client(base_url=self.url, timeout=5)  # sends no token

    def stop(self) -> None:
        self.http.close()
        self.anonymous.close()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


def controller_settings(base: Path, api_token: str | None = TOKEN) -> Settings:
    return Settings(
        scenario_dir=base / "scenarios",
        runs_dir=base / "runs",
        sip_controller_url="",
        progress_interval_seconds=0.2,
        api_token=api_token,
    )


@pytest.fixture
def start_controller(tmp_path: Path) -> Iterator[Callable[..., LiveController]]:
    """Starts controllers on the same scenario and runs directories (a restart: stop, start)."""
    started: list[LiveController] = []

    def start(send_buffer: int | None = None, api_token: str | None = TOKEN) -> LiveController:
        controller = LiveController(controller_settings(tmp_path, api_token), send_buffer)
        started.append(controller)
        return controller

    yield start
    for controller in started:
        if controller.thread.is_alive():
            controller.stop()


@pytest.fixture
def live(start_controller: Callable[..., LiveController]) -> LiveController:
    return start_controller()
