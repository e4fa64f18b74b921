"""`python -m sip_client`: one pod and its HTTP API on SIP_CLIENT_HTTP_HOST:PORT, on uvloop."""

from __future__ import annotations

import logging

import uvicorn

from sip_client.config import Settings
from sip_client.main import create_app


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s pod {settings.pod_id} %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.sip_client_http_host,
        port=settings.sip_client_http_port,
        log_level=settings.log_level.lower(),
        loop="uvloop",
        access_log=False,
    )


if __name__ == "__main__":
    main()
