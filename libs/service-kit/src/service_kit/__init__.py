"""What every FastAPI service of the testbed shares at its entry point (see its README)."""

from service_kit.app import service_app
from service_kit.command import command_line, listen_address, load_settings, parser, port_number
from service_kit.settings import (
    ServiceSettings,
    SettingsRuleError,
    env_name,
    env_variables,
    error_lines,
)

__all__ = [
    "ServiceSettings",
    "SettingsRuleError",
    "command_line",
    "env_name",
    "env_variables",
    "error_lines",
    "listen_address",
    "load_settings",
    "parser",
    "port_number",
    "service_app",
]
