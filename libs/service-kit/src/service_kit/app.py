"""The FastAPI application every service starts from."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when called: `import service_kit` stays light for the CLIs
    from fastapi import FastAPI


def service_app(
    title: str, version: str, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]]
) -> FastAPI:
    """No Swagger UI or ReDoc: FastAPI loads them from a CDN. The document stays at
    /openapi.json and is committed as services/<name>/openapi.json (scripts/openapi.sh)."""
    from fastapi import FastAPI

    return FastAPI(title=title, version=version, lifespan=lifespan, docs_url=None, redoc_url=None)
