"""A task that runs beside the service for the length of a lifespan: started on entry,
cancelled and awaited on exit, its crash logged when it happens (not lost in a task nobody
awaits, nor raised at shutdown long after)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

Work = Coroutine[Any, Any, object] | Callable[[], Awaitable[object]]


def _report(task: asyncio.Task[object]) -> None:
    if task.cancelled():
        return
    error = task.exception()  # retrieved here, so asyncio does not warn again at exit
    if error is not None:
        log.error("background task %s crashed", task.get_name(), exc_info=error)
    else:
        log.info("background task %s ended", task.get_name())


async def _run(work: Callable[[], Awaitable[object]]) -> object:
    return await work()


@contextlib.asynccontextmanager
async def background(work: Work, *, name: str) -> AsyncIterator[asyncio.Task[object]]:
    """`async with background(reconciler.run_forever(5), name="reconciler"):` (a coroutine,
    or a function returning an awaitable). Yields the task."""
    coroutine = _run(work) if callable(work) else work
    task: asyncio.Task[object] = asyncio.create_task(coroutine, name=name)
    task.add_done_callback(_report)
    try:
        yield task
    finally:
        task.cancel()
        # a crash was logged by _report; shutdown goes on either way
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
