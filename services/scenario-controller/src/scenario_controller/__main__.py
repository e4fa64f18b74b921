"""`python -m scenario_controller`: serve on SCENARIO_CONTROLLER_HOST:PORT, on uvloop."""

from __future__ import annotations

import logging

import uvicorn

from scenario_controller.config import Settings
from scenario_controller.main import create_app


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.scenario_controller_host,
        port=settings.scenario_controller_port,
        log_level=settings.log_level.lower(),
        loop="uvloop",
        ws="websockets",
        ws_per_message_deflate=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
