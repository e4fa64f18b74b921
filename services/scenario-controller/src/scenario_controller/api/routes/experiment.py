"""The experiment `testbed run` pushes, or `testbed view` replays: the panel's Experiment tab."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api_token.guard import require_token
from scenario_controller.deps import ControllerDep
from scenario_controller.experiment import ReadOnly
from testbed_messages.experiment import SamplesPush


class _InputlessErrors(APIRoute):
    """A 422 without the offending values: FastAPI's repeats each input, and a NaN (which
    Python's JSON reader accepts) cannot be written back as JSON, so it would be a 500."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = [
                    {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")}
                    for e in exc.errors()
                ]
                return JSONResponse(status_code=422, content={"detail": errors})

        return route


router = APIRouter(tags=["experiment"], route_class=_InputlessErrors)


@router.post("/experiment/samples", dependencies=[Depends(require_token)])
async def push_samples(body: SamplesPush, controller: ControllerDep) -> dict[str, object]:
    """New samples of a run, its proxies and scaling events (a new `run_id` starts over).
    Samples whose t_s is not after the last one held are ignored, so a backlog may be resent;
    `held` says how many of this run's samples the controller keeps (at most `capacity`)."""
    try:
        held = controller.experiment.push(body)
    except ReadOnly as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return {"held": held, "capacity": controller.experiment.capacity}


@router.get("/experiment")
async def experiment(
    controller: ControllerDep,
    after: Annotated[int, Query(ge=0, description="only samples numbered after this")] = 0,
) -> dict[str, object]:
    """The experiment as held: its description, proxies, scaling events and samples (each with
    its `seq`); `experiment` is null before any push."""
    return controller.experiment.view(after)
