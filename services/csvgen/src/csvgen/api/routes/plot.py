"""PNG plots: POST /plot (lambda(t) of a shape), POST /plot/scenario (an uploaded file's
realized and declared per-second rate)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Response, UploadFile

from api_token.guard import require_token
from csvgen.deps import SettingsDep
from scenario_csv import text_lines
from scenario_gen.scenario import build_shape
from scenario_gen.spec import ShapeRequest

# every route here is a POST: the API token (they write nothing, but cost CPU)
router = APIRouter(tags=["plot"], dependencies=[Depends(require_token)])
PNG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "a PNG image"},
    422: {"description": "bad shape parameters, or the first malformed row of the file"},
}


@router.post("/plot", response_class=Response, responses=PNG)
async def plot_shape(body: ShapeRequest, settings: SettingsDep) -> Response:
    from csvgen.plot import shape_png

    def render() -> bytes:
        return shape_png(build_shape(body.shape, settings.data_file))

    return Response(await anyio.to_thread.run_sync(render), media_type="image/png")


@router.post("/plot/scenario", response_class=Response, responses=PNG)
async def plot_scenario(file: UploadFile) -> Response:
    """422 naming line and field at the first malformed row."""
    from csvgen.plot import scenario_png

    def render() -> bytes:
        return scenario_png(text_lines(file.file), source=file.filename)

    return Response(await anyio.to_thread.run_sync(render), media_type="image/png")
