"""The naming rule and the error lines, on small settings classes."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from service_kit import ServiceSettings, SettingsRuleError, env_variables, error_lines


class Toy(ServiceSettings):
    listen_fields = ("toy_host", "toy_port")

    toy_host: str = "127.0.0.1"
    toy_port: int = Field(8000, gt=0, lt=65536)
    mode: Literal["a", "b"] = "a"
    api_token: str | None = None
    peer: str = ""

    @model_validator(mode="after")
    def _peer_needs_token(self) -> Toy:
        if self.peer and not self.api_token:
            raise ValueError("PEER is set but API_TOKEN is not")
        return self


def _errors(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Toy()
    return error_lines(raised.value)


def test_a_field_is_read_from_its_name_in_capitals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOY_PORT", "9000")
    monkeypatch.setenv("MODE", "b")
    monkeypatch.setenv("PORT", "1")  # a bare name is not the field's
    settings = Toy()
    assert (settings.toy_port, settings.mode) == (9000, "b")
    assert list(env_variables(Toy)) == ["TOY_HOST", "TOY_PORT", "MODE", "API_TOKEN", "PEER"]


def test_each_bad_variable_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _errors(monkeypatch, TOY_PORT="70000", MODE="c")
    assert lines == [
        "TOY_PORT: Input should be less than 65536",
        "MODE: Input should be 'a' or 'b'",
    ]


def test_a_check_across_settings_is_its_own_message(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _errors(monkeypatch, PEER="ws://x") == ["PEER is set but API_TOKEN is not"]


def test_the_rejected_value_never_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret in a bad variable (here a port) stays out of the message and the log."""
    secret = "hunter2-hunter2-hunter2"
    monkeypatch.setenv("TOY_PORT", secret)
    with pytest.raises(ValidationError) as raised:
        Toy()
    assert secret not in str(raised.value)
    assert not any(secret in line for line in error_lines(raised.value))


def test_a_misspelt_keyword_is_an_error_not_ignored() -> None:
    with pytest.raises(ValidationError) as raised:
        Toy(toy_prot=1)  # type: ignore[call-arg]
    assert error_lines(raised.value) == ["TOY_PROT: not a setting of this service"]


def test_a_prefix_breaks_the_rule() -> None:
    with pytest.raises(SettingsRuleError, match="no env_prefix"):

        class Prefixed(ServiceSettings):
            model_config = SettingsConfigDict(env_prefix="X_")
            listen_fields = ("host", "port")
            host: str = ""
            port: int = 1


def test_an_alias_breaks_the_rule() -> None:
    with pytest.raises(SettingsRuleError, match="no alias"):

        class Aliased(ServiceSettings):
            listen_fields = ("host", "port")
            host: str = Field("", validation_alias="OTHER_HOST")
            port: int = 1


def test_listen_fields_must_name_fields() -> None:
    with pytest.raises(SettingsRuleError, match="listen_fields"):

        class Unlistening(ServiceSettings):
            listen_fields = ("host", "prot")
            host: str = ""
            port: int = 1
