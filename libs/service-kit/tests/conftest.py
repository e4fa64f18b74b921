"""A repository with one service, toy-svc, laid out like the real ones."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

CONFIG = """
from pathlib import Path

from pydantic import Field

from service_kit import ServiceSettings


class Settings(ServiceSettings):
    listen_fields = ("toy_host", "toy_port")

    toy_host: str = "127.0.0.1"
    toy_port: int = Field(8000, gt=0, lt=65536, description="the | port")
    toy_title: str = "toy"
    toy_dir: Path = Path(__file__).parent / "data"
    toy_home: Path = Path.home() / ".toy"
    api_token: str | None = None
    debug: bool = False
"""
MAIN = """
from fastapi import FastAPI

from toy_svc.config import Settings


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title=settings.toy_title, version="1.0", docs_url=None, redoc_url=None)

    @app.get("/zeta")
    def zeta() -> dict[str, int]:
        return {"z": 1}

    @app.post("/alpha")
    def alpha(count: int = 1) -> dict[str, int]:
        return {"a": count}

    return app
"""


@pytest.fixture
def toy_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    service = tmp_path / "services" / "toy-svc"
    package = service / "src" / "toy_svc"
    package.mkdir(parents=True)
    (service / "pyproject.toml").write_text('[project]\nname = "toy-svc"\n')
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text(textwrap.dedent(CONFIG))
    (package / "main.py").write_text(textwrap.dedent(MAIN))
    monkeypatch.syspath_prepend(str(service / "src"))
    yield tmp_path
    for name in [m for m in sys.modules if m == "toy_svc" or m.startswith("toy_svc.")]:
        del sys.modules[name]
