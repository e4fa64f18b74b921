"""`testbed compose token`: the API token compose gives the services (environment, else .env)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from testbed.containers.compose_cli import compose_app, ensure_env_file, env_file_value


@pytest.fixture
def compose_file(tmp_path: Path) -> Path:
    path = tmp_path / "docker-compose.yml"
    path.write_text("services: {}\n")
    return path


def test_token_from_the_env_file(compose_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_TOKEN", raising=False)
    (compose_file.parent / ".env").write_text(
        "# secrets\nDB_PASSWORD=abc\nAPI_TOKEN='Tok3nFromTheEnvFile0123'\n"
    )
    result = CliRunner().invoke(compose_app, ["token", "--file", str(compose_file)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Tok3nFromTheEnvFile0123\n"


def test_the_environment_wins_as_in_compose(
    compose_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (compose_file.parent / ".env").write_text("API_TOKEN=Tok3nFromTheEnvFile0123\n")
    monkeypatch.setenv("API_TOKEN", "Tok3nFromTheEnvironment")
    result = CliRunner().invoke(compose_app, ["token", "--file", str(compose_file)])
    assert result.stdout == "Tok3nFromTheEnvironment\n"


def test_no_env_file_names_the_script(compose_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_TOKEN", raising=False)
    result = CliRunner().invoke(compose_app, ["token", "--file", str(compose_file)])
    assert result.exit_code == 1
    assert "compose-env.sh" in result.output


def test_compose_up_generates_the_env_file_once(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    ensure_env_file(env_file)
    first = env_file.read_text()
    assert env_file.stat().st_mode & 0o777 == 0o600
    token = env_file_value(env_file, "API_TOKEN")
    assert token is not None
    assert len(token) >= 16
    template = env_file_value(env_file, "SUBSCRIBER_PASSWORD_TEMPLATE")
    assert template is not None
    assert template.endswith("-{username}")
    assert len(template) > len("-{username}")
    ensure_env_file(env_file)  # never overwrites: MariaDB's volume keeps the first password
    assert env_file.read_text() == first
    other = tmp_path / "other.env"
    ensure_env_file(other)
    assert env_file_value(other, "API_TOKEN") != token
