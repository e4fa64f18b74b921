"""Start, pause, resume and stop a scenario run; its run log as CSV."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from api_token.guard import require_token
from scenario_controller.deps import ControllerDep
from scenario_controller.state import Run, RunConflict
from scenario_controller.store import BadScenarioName, CorruptScenario, UnknownScenario

router = APIRouter(tags=["runs"])
GUARDED = [Depends(require_token)]  # run control changes state: the API token


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str
    speed: float = Field(1.0, gt=0, le=1000, description="2 plays the scenario twice as fast")
    hold_ms: int | None = Field(
        None, ge=0, description="hold time of every call (default DEFAULT_HOLD_MS)"
    )


def _run(controller: ControllerDep, run_id: str) -> Run:
    run = controller.current if run_id == "current" else controller.runs.get(run_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id!r}")
    return run


@router.post("/runs", status_code=201, dependencies=GUARDED)
async def start(body: StartRun, controller: ControllerDep) -> dict[str, object]:
    try:
        run = controller.start(body.scenario, body.speed, body.hold_ms)
    except CorruptScenario as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except UnknownScenario:
        raise HTTPException(
            status_code=404, detail=f"no scenario named {body.scenario!r}"
        ) from None
    except BadScenarioName as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except RunConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return run.view()


@router.get("/runs")
async def runs(controller: ControllerDep) -> list[dict[str, object]]:
    return [run.view() for run in controller.runs.values()]


@router.get("/runs/{run_id}")
async def get_run(run_id: str, controller: ControllerDep) -> dict[str, object]:
    return _run(controller, run_id).view()


@router.post("/runs/{run_id}/pause", dependencies=GUARDED)
async def pause(run_id: str, controller: ControllerDep) -> dict[str, object]:
    run = _run(controller, run_id)
    if not run.active:
        raise HTTPException(status_code=409, detail=f"run {run.run_id} is {run.state}")
    run.pause()
    return run.view()


@router.post("/runs/{run_id}/resume", dependencies=GUARDED)
async def resume(run_id: str, controller: ControllerDep) -> dict[str, object]:
    run = _run(controller, run_id)
    if not run.active:
        raise HTTPException(status_code=409, detail=f"run {run.run_id} is {run.state}")
    run.resume()
    return run.view()


@router.post("/runs/{run_id}/stop", dependencies=GUARDED)
async def stop(run_id: str, controller: ControllerDep) -> dict[str, object]:
    run = _run(controller, run_id)
    run.stop()
    return run.view()


@router.get("/runs/{run_id}/log")
async def run_log(run_id: str, controller: ControllerDep) -> FileResponse:
    """Every invite with its scheduled and actual send time (the paper's validation, 3.5.2)."""
    run = _run(controller, run_id)
    if not run.log_path.is_file():
        raise HTTPException(status_code=404, detail=f"the log of run {run.run_id} is gone")
    return FileResponse(run.log_path, media_type="text/csv", filename=f"{run.run_id}-run-log.csv")
