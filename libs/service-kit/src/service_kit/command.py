"""A service's command line: --help, --host, --port (which beat the environment), and the
settings from the environment, or one line per bad one and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from service_kit.settings import ServiceSettings, env_name, env_variables, error_lines

S = TypeVar("S", bound=ServiceSettings)

USAGE_ERROR = 2  # argparse's and click's code for bad input


def port_number(text: str) -> int:
    """--port's type: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a port (1-65535)")
    return port


def _variables(settings_cls: type[ServiceSettings]) -> str:
    lines = ["environment (docs/configuration.md; --host/--port beat their variables):"]
    for name, info in env_variables(settings_cls).items():
        if info.is_required():
            lines.append(f"  {name:<32} required")
            continue
        default = "unset" if info.default is None else repr(info.default)
        lines.append(f"  {name:<32} default {default}")
    return "\n".join(lines)


def parser(
    settings_cls: type[ServiceSettings], prog: str, description: str
) -> argparse.ArgumentParser:
    host, port = settings_cls.listen_fields
    result = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=_variables(settings_cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("--host", help=f"address to serve HTTP on (default: ${env_name(host)})")
    result.add_argument(
        "--port", type=port_number, help=f"port to serve HTTP on (default: ${env_name(port)})"
    )
    return result


def load_settings(
    settings_cls: type[S], prog: str, host: str | None = None, port: int | None = None
) -> S:
    """The settings from the environment, host and port replaced when given; bad settings are
    one line each on stderr (`prog: NAME: problem`) and exit code 2, no traceback."""
    host_field, port_field = settings_cls.listen_fields
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides[host_field] = host
    if port is not None:
        overrides[port_field] = port
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        for line in error_lines(exc):
            print(f"{prog}: {line}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None


def command_line(
    settings_cls: type[S], prog: str, description: str, argv: Sequence[str] | None = None
) -> S:
    """Parse argv (default sys.argv[1:]) and load the settings: what a service's main() does
    before it starts its server."""
    args = parser(settings_cls, prog, description).parse_args(argv)
    return load_settings(settings_cls, prog, args.host, args.port)


def listen_address(settings: ServiceSettings) -> tuple[str, int]:
    """The (host, port) the service serves HTTP on."""
    host, port = type(settings).listen_fields
    return str(getattr(settings, host)), int(getattr(settings, port))
