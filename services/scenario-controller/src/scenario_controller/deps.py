from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from scenario_controller.state import Controller


def get_controller(connection: HTTPConnection) -> Controller:
    controller: Controller = connection.app.state.controller
    return controller


ControllerDep = Annotated[Controller, Depends(get_controller)]
