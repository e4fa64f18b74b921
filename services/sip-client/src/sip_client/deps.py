from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sip_client.runtime import PodRuntime


def get_runtime(request: Request) -> PodRuntime:
    runtime: PodRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[PodRuntime, Depends(get_runtime)]
