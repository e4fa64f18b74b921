"""`python -m sip_controller [--host H] [--port P]` (or `sip-controller`): serve the API on
SIP_CONTROLLER_HOST:PORT; the other settings come from the environment (docs/configuration.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import uvicorn

from service_kit import command_line, listen_address
from sip_controller.config import Settings
from sip_controller.main import create_app

DESCRIPTION = (
    "The testbed's DB owner, the proxies' lifecycle hooks and the load balancers' conductor."
)


def main(argv: Sequence[str] | None = None) -> None:
    settings = command_line(Settings, "sip-controller", DESCRIPTION, argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    host, port = listen_address(settings)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
