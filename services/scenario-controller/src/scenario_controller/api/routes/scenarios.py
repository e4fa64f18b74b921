"""Scenario store: upload (validated first), list, show, delete."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from api_token.guard import require_token
from scenario_controller.deps import ControllerDep
from scenario_controller.store import (
    BadScenarioName,
    CorruptScenario,
    ScenarioRejected,
    UnknownScenario,
)

router = APIRouter(tags=["scenarios"])


def _not_found(name: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no scenario named {name!r}")


@router.post(
    "/scenarios", status_code=201, response_model=None, dependencies=[Depends(require_token)]
)
async def upload(
    request: Request,
    controller: ControllerDep,
    name: Annotated[
        str | None, Query(description="name to store it under (default: the file name)")
    ] = None,
) -> dict[str, object] | JSONResponse:
    """A CSV as the request body (text/csv) or as a multipart `file` field."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload_file = form.get("file")
        if not isinstance(upload_file, UploadFile):
            raise HTTPException(status_code=422, detail="multipart upload without a 'file' field")
        name = name or (upload_file.filename or "")
        stream = upload_file.file
    else:
        stream = io.BytesIO(await request.body())
    if not name:
        raise HTTPException(status_code=422, detail="give the scenario a name (?name=...)")
    try:
        stored = controller.store.save(name, stream)
    except BadScenarioName as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except ScenarioRejected as exc:
        return JSONResponse(
            status_code=422,
            content={
                "detail": f"{name}: {exc.total} defect(s); nothing was stored",
                "total": exc.total,
                "defects": [
                    {"line": d.line, "field": d.field, "message": d.message} for d in exc.defects
                ],
            },
        )
    return stored.view()


@router.get("/scenarios")
async def list_scenarios(controller: ControllerDep) -> list[dict[str, object]]:
    return [s.view() for s in controller.store.all()]


@router.get("/scenarios/{name}")
async def get_scenario(name: str, controller: ControllerDep) -> dict[str, object]:
    try:
        return controller.store.get(name).view(with_rate=True)
    except CorruptScenario as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except UnknownScenario:
        raise _not_found(name) from None
    except BadScenarioName as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


@router.delete("/scenarios/{name}", status_code=204, dependencies=[Depends(require_token)])
async def delete_scenario(name: str, controller: ControllerDep) -> Response:
    try:
        controller.store.delete(name)
    except UnknownScenario:
        raise _not_found(name) from None
    except BadScenarioName as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return Response(status_code=204)
