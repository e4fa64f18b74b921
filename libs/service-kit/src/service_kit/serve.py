"""A service's main(): logging set up once, then uvicorn on the settings' listen address."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from service_kit.command import listen_address
from service_kit.settings import ServiceSettings

if TYPE_CHECKING:  # imported when called: `import service_kit` stays light for the CLIs
    from fastapi import FastAPI


def log_format(context: str = "") -> str:
    """The testbed's log line: time, context (e.g. `pod 07`), level, logger, message."""
    return f"%(asctime)s {context + ' ' if context else ''}%(levelname)s %(name)s: %(message)s"


def setup_logging(level: str, context: str = "") -> None:
    logging.basicConfig(level=level.upper(), format=log_format(context))


def serve(
    app: FastAPI,
    settings: ServiceSettings,
    *,
    log_level: str,
    log_context: str = "",
    **uvicorn_options: Any,
) -> None:
    """Serve app on the settings' listen fields (the command line's --host/--port, or their
    variables) until SIGINT/SIGTERM. uvicorn_options: the service's own (loop, ws, access_log)."""
    import uvicorn

    setup_logging(log_level, log_context)
    host, port = listen_address(settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), **uvicorn_options)
