"""`python -m sip_client [--host H] [--port P]` (or `sip-client`): one pod and its HTTP API on
SIP_CLIENT_HTTP_HOST:PORT, on uvloop; the other settings come from the environment
(docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Sequence

from service_kit import command_line, serve
from sip_client.config import Settings
from sip_client.main import create_app

DESCRIPTION = "A pod of up to 100 softphones on one UDP socket, driven by the scenario controller."


def main(argv: Sequence[str] | None = None) -> None:
    settings = command_line(Settings, "sip-client", DESCRIPTION, argv)
    serve(
        create_app(settings),
        settings,
        log_level=settings.log_level,
        log_context=f"pod {settings.pod_id}",
        loop="uvloop",
        access_log=False,
    )


if __name__ == "__main__":
    main()
