"""--help, --host and --port, and bad settings: one line each on stderr, exit code 2."""

from __future__ import annotations

import pytest
from pydantic import Field

from service_kit import ServiceSettings, command_line, listen_address


class Toy(ServiceSettings):
    listen_fields = ("toy_host", "toy_port")

    toy_host: str = "127.0.0.1"
    toy_port: int = Field(8000, gt=0, lt=65536)
    api_token: str | None = None
    buckets: int = Field(3, ge=1, description="how many")


class Needy(ServiceSettings):
    listen_fields = ("needy_host", "needy_port")

    needy_host: str = "127.0.0.1"
    needy_port: int = 8000
    needy_url: str  # no default: the environment must give it


def test_help_says_which_variables_are_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        command_line(Needy, "needy", "", ["--help"])
    rows = {row.split()[0]: row.split()[1:] for row in capsys.readouterr().out.splitlines()[-3:]}
    assert rows == {
        "NEEDY_HOST": ["default", "'127.0.0.1'"],
        "NEEDY_PORT": ["default", "8000"],
        "NEEDY_URL": ["required"],
    }


def test_help_names_the_options_and_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        command_line(Toy, "toy", "A toy service.", ["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "A toy service." in out
    assert "--host HOST" in out
    assert "$TOY_HOST" in out
    assert "--port PORT" in out
    assert "$TOY_PORT" in out
    for line in ("TOY_PORT", "default 8000"), ("API_TOKEN", "default unset"):
        assert any(all(part in row for part in line) for row in out.splitlines()), line


def test_the_command_line_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOY_HOST", "127.0.0.2")
    monkeypatch.setenv("TOY_PORT", "not-even-a-number")  # replaced, so never an error
    settings = command_line(Toy, "toy", "", ["--host", "127.0.0.3", "--port", "9001"])
    assert listen_address(settings) == ("127.0.0.3", 9001)
    monkeypatch.setenv("TOY_PORT", "9002")
    assert listen_address(command_line(Toy, "toy", "", [])) == ("127.0.0.2", 9002)


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_bad_port_option_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        command_line(Toy, "toy", "", ["--port", port])
    assert exited.value.code == 2
    assert "argument --port" in capsys.readouterr().err


def test_bad_settings_are_one_line_each_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOY_PORT", "0")
    monkeypatch.setenv("BUCKETS", "many")
    with pytest.raises(SystemExit) as exited:
        command_line(Toy, "toy", "", [])
    assert exited.value.code == 2
    assert exited.value.__suppress_context__  # no chained pydantic traceback
    assert capsys.readouterr().err.splitlines() == [
        "toy: TOY_PORT: Input should be greater than 0",
        "toy: BUCKETS: Input should be a valid integer, unable to parse string as an integer",
    ]
