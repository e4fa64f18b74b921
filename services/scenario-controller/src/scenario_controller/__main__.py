"""`python -m scenario_controller [--host H] [--port P]` (or `scenario-controller`): serve on
SCENARIO_CONTROLLER_HOST:PORT, on uvloop; the other settings come from the environment
(docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Sequence

from scenario_controller.config import Settings
from scenario_controller.latency import request_short_slice
from scenario_controller.main import create_app
from service_kit import command_line, serve

DESCRIPTION = "Replays a scenario CSV to the sip-client pods over WebSocket; web control panel."


def main(argv: Sequence[str] | None = None) -> None:
    settings = command_line(Settings, "scenario-controller", DESCRIPTION, argv)
    # this thread becomes the event loop's, the one that sends every invite on time
    request_short_slice()
    serve(
        create_app(settings),
        settings,
        log_level=settings.log_level,
        loop="uvloop",
        ws="websockets",
        ws_per_message_deflate=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
