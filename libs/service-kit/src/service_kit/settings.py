"""The testbed's one rule for settings: a setting's environment variable is its field name in
capitals, no prefix, no alias (docs/configuration.md). Names are testbed-wide: API_TOKEN or
SIP_DOMAIN mean the same in every service that reads them, and a service's own name goes into
a variable where the bare name would be ambiguous (SIP_CONTROLLER_HOST, ANALYZER_INTERFACE)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from service_kit.validation import Location, problem_lines


class SettingsRuleError(TypeError):
    """A settings class that breaks the naming rule (raised when the class is defined)."""


class ServiceSettings(BaseSettings):
    """Base of every service's Settings.

    Subclasses name the two fields --host and --port override in `listen_fields`.
    """

    # extra="forbid": a misspelt keyword in code is an error, not a silently ignored setting
    # (stray environment variables are never "extra": only the fields' names are looked up);
    # hide_input_in_errors: a rejected API_TOKEN or DATABASE_URL never reaches a log
    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="forbid", hide_input_in_errors=True
    )

    listen_fields: ClassVar[tuple[str, str]]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.model_config.get("env_prefix"):
            raise SettingsRuleError(f"{cls.__qualname__}: no env_prefix (docs/configuration.md)")
        for name, info in cls.model_fields.items():
            if info.alias is not None or info.validation_alias is not None:
                raise SettingsRuleError(
                    f"{cls.__qualname__}.{name}: no alias; the field's name is its variable's"
                )
        listen = getattr(cls, "listen_fields", ())
        if len(listen) != 2 or not set(listen) <= set(cls.model_fields):
            raise SettingsRuleError(
                f"{cls.__qualname__}: listen_fields must name its host and port fields"
            )


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    return field.upper()


def env_variables(settings_cls: type[BaseSettings]) -> dict[str, FieldInfo]:
    """Every variable a settings class reads, with its field."""
    return {env_name(name): info for name, info in settings_cls.model_fields.items()}


# the settings' own words for two of pydantic's errors
_SETTINGS_PROBLEMS = {
    "missing": "required, not set",
    "extra_forbidden": "not a setting of this service",
}


def _variable(loc: Location) -> str:
    return env_name(str(loc[0])) + "".join(f"[{part}]" for part in loc[1:])


def error_lines(error: ValidationError) -> list[str]:
    """One line per problem, each naming its variable: `NAME: problem`, or the problem alone
    when it names the variables itself (a check across several settings)."""
    return problem_lines(error, where=_variable, replace=_SETTINGS_PROBLEMS)
