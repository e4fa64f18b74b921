"""to_environment: the variables that make a service read its settings back."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field, SecretStr

from service_kit import ServiceSettings
from service_kit.environment import to_environment


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Toy(ServiceSettings):
    listen_fields = ("toy_host", "toy_port")

    toy_host: str = "127.0.0.1"
    toy_port: int = Field(8000, gt=0, lt=65536)
    ratio: float = 0.5
    debug: bool = False
    data_dir: Path = Path("/var/lib/toy")
    mode: Literal["a", "b"] = "a"
    color: Color = Color.RED
    peers: list[str] = Field(default_factory=list)
    limits: dict[str, int] = Field(default_factory=dict)
    secret: SecretStr = SecretStr("default")
    api_token: str | None = None
    note: str = ""


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Toy.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_each_kind_of_value_is_written_as_it_is_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    chosen = Toy(
        toy_port=9000,
        ratio=0.125,
        debug=True,
        data_dir=Path("/tmp/toy data"),
        mode="b",
        color=Color.BLUE,
        peers=["a:1", "b,2"],
        limits={"x": 3},
        secret=SecretStr("s3cret"),
        note='{"not": "json"}',
    )
    environment = to_environment(chosen)
    assert environment == {
        "TOY_PORT": "9000",
        "RATIO": "0.125",
        "DEBUG": "true",
        "DATA_DIR": "/tmp/toy data",
        "MODE": "b",
        "COLOR": "blue",
        "PEERS": '["a:1","b,2"]',
        "LIMITS": '{"x":3}',
        "SECRET": "s3cret",
        "NOTE": '{"not": "json"}',
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert Toy() == chosen


def test_defaults_and_none_are_left_out_and_the_environment_counts_as_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("RATIO", "2.5")  # read from the environment: passed on
    monkeypatch.setenv("API_TOKEN", "from-the-environment")
    # given as None: beats the environment, and is not set for the service either
    settings = Toy(toy_host="127.0.0.9", api_token=None)
    assert to_environment(settings) == {"TOY_HOST": "127.0.0.9", "RATIO": "2.5"}
    # not given: the environment's value goes through
    assert to_environment(Toy(debug=False)) == {
        "DEBUG": "false",
        "RATIO": "2.5",
        "API_TOKEN": "from-the-environment",
    }
