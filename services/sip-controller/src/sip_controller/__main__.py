"""`python -m sip_controller [--host H] [--port P]` (or `sip-controller`): serve the API on
SIP_CONTROLLER_HOST:PORT; the other settings come from the environment (docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Sequence

from service_kit import command_line, serve
from sip_controller.config import Settings
from sip_controller.main import create_app

DESCRIPTION = (
    "The testbed's DB owner, the proxies' lifecycle hooks and the load balancers' conductor."
)


def main(argv: Sequence[str] | None = None) -> None:
    settings = command_line(Settings, "sip-controller", DESCRIPTION, argv)
    serve(create_app(settings), settings, log_level=settings.log_level)


if __name__ == "__main__":
    main()
