"""serve(): a real uvicorn on the settings' host and port, with the testbed's log line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

SERVICE = """
import contextlib
import logging

from fastapi import FastAPI
from pydantic import Field

from service_kit import ServiceSettings, command_line, serve, service_app


class Settings(ServiceSettings):
    listen_fields = ("toy_host", "toy_port")

    toy_host: str = "127.0.0.1"
    toy_port: int = Field(8000, gt=0, lt=65536)
    log_level: str = "info"


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    logging.getLogger("toy.lifespan").info("started")
    logging.getLogger("toy.lifespan").debug("debug is hidden")
    yield


settings = command_line(Settings, "toy", "a toy service")
app = service_app("toy", "1.0", lifespan)


@app.get("/where")
def where() -> dict[str, object]:
    return {"host": settings.toy_host, "port": settings.toy_port}


serve(app, settings, log_level=settings.log_level, log_context="pod 07")
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_binds_the_settings_address_and_sets_up_logging(tmp_path: Path) -> None:
    script = tmp_path / "toy.py"
    script.write_text(textwrap.dedent(SERVICE))
    port = _free_port()
    env = {**os.environ, "TOY_PORT": str(port), "LOG_LEVEL": "INFO"}
    log = tmp_path / "stderr"
    with log.open("w") as stderr:
        # --host beats TOY_HOST; the port comes from the environment
        process = subprocess.Popen(
            [sys.executable, str(script), "--host", "127.0.0.1"], env=env, stderr=stderr
        )
    try:
        body = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/where", timeout=2) as r:
                    body = r.read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == f'{{"host":"127.0.0.1","port":{port}}}'.encode(), log.read_text()
    finally:
        process.terminate()
        process.wait(10)
    text = log.read_text()
    # the one log line format, with the service's context, at the settings' level
    assert " pod 07 INFO toy.lifespan: started" in text
    assert "debug is hidden" not in text
    assert f"Uvicorn running on http://127.0.0.1:{port}" in text


def test_importing_the_kit_loads_no_server() -> None:
    """The CLIs (`analyzer offline`, `csvgen generate`) use the kit's parsers and formatter;
    FastAPI, uvicorn and the instrumentator load only when an app is built or served."""
    heavy = ("fastapi", "uvicorn", "prometheus_fastapi_instrumentator", "starlette")
    code = f"import sys, service_kit; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
