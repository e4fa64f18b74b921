"""What every FastAPI service of the testbed shares at its entry point (see its README)."""

from service_kit.addresses import AddressError, HostPort, parse_host_port
from service_kit.app import service_app
from service_kit.background import background
from service_kit.command import command_line, listen_address, load_settings, parser, port_number
from service_kit.metrics import instrument
from service_kit.serve import serve, setup_logging
from service_kit.settings import (
    ServiceSettings,
    SettingsRuleError,
    env_name,
    env_variables,
    error_lines,
)
from service_kit.validation import describe, problem, problem_lines

__all__ = [
    "AddressError",
    "HostPort",
    "ServiceSettings",
    "SettingsRuleError",
    "background",
    "command_line",
    "describe",
    "env_name",
    "env_variables",
    "error_lines",
    "instrument",
    "listen_address",
    "load_settings",
    "parse_host_port",
    "parser",
    "port_number",
    "problem",
    "problem_lines",
    "serve",
    "service_app",
    "setup_logging",
]
