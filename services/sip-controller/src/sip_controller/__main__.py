"""`python -m sip_controller`: serve the API with uvicorn on SIP_CONTROLLER_HOST:PORT."""

from __future__ import annotations

import logging

import uvicorn

from sip_controller.config import Settings
from sip_controller.main import create_app


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.sip_controller_host,
        port=settings.sip_controller_port,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
