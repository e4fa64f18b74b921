"""A settings object as the environment that makes its service read it back: how a launcher
(local mode) starts a service with the settings it chose, by the naming rule of settings.py."""

from __future__ import annotations

from enum import Enum
from pathlib import PurePath

from pydantic import SecretBytes, SecretStr
from pydantic_core import to_json
from pydantic_settings import BaseSettings

from service_kit.settings import env_name


def to_environment(settings: BaseSettings) -> dict[str, str]:
    """`{VARIABLE: value}` for every field of `settings` that was set: given to its constructor
    or read from the environment. A field left at its default is left out (the service applies
    the same default), and so is one set to None (unset). Values are written as
    pydantic-settings reads them back: text as it is, booleans `true`/`false`, numbers and paths
    as text, secrets revealed, lists, dicts and models as JSON."""
    environment: dict[str, str] = {}
    for field in sorted(settings.model_fields_set):
        value = getattr(settings, field)
        if value is not None:
            environment[env_name(field)] = _text(value)
    return environment


def _text(value: object) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, SecretStr | SecretBytes):
        value = value.get_secret_value()
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is one
        return "true" if value else "false"
    if isinstance(value, int | float | PurePath):
        return str(value)
    # what pydantic-settings parses as JSON: lists, sets, dicts, models
    return to_json(value).decode()
