"""`policy-controller serve [--host H] [--port P]`: run the controller and its HTTP API with
the settings from POLICY_CONTROLLER_* variables (docs/configuration.md). Bad settings: one line
each on stderr, exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from service_kit import load_settings, parser, serve

PROG = "policy-controller"
DESCRIPTION = (
    "The testbed's predictive scaling policy against a cluster's Prometheus: sets the SIP "
    "proxies' replicas through their scale subresource."
)
USAGE = f"usage: {PROG} serve [--help] [--host HOST] [--port PORT]"


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(f"{USAGE}\n\n{DESCRIPTION}\n\n`{PROG} serve --help` lists the settings.")
        return
    if args[:1] != ["serve"]:
        print(f"{USAGE}\n{PROG}: error: the command is serve", file=sys.stderr)
        raise SystemExit(2)
    from policy_controller.config import Settings
    from policy_controller.main import create_app

    # service_kit.command_line's steps, with `serve` in the usage line
    options = parser(Settings, f"{PROG} serve", DESCRIPTION).parse_args(args[1:])
    settings = load_settings(Settings, PROG, options.host, options.port)
    problems = settings.check()
    for line in problems:
        print(f"{PROG}: {line}", file=sys.stderr)
    if problems:
        raise SystemExit(2)
    serve(create_app(settings), settings, log_level=settings.policy_controller_log_level)
