"""background(): the task runs inside the block, is cancelled and awaited on exit, and a
crash is logged when it happens."""

from __future__ import annotations

import asyncio
import logging

import pytest

from service_kit import background


async def _forever(started: asyncio.Event, cancelled: list[bool]) -> None:
    started.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        cancelled.append(True)
        raise


def test_the_task_runs_and_is_cancelled_and_awaited_on_exit() -> None:
    async def scenario() -> asyncio.Task[object]:
        started = asyncio.Event()
        cancelled: list[bool] = []
        async with background(_forever(started, cancelled), name="ticker") as task:
            await asyncio.wait_for(started.wait(), 1)
            assert not task.done()
            assert task.get_name() == "ticker"
        # awaited: the task is finished by the time the block is left
        assert task.cancelled()
        assert cancelled == [True]
        return task

    asyncio.run(scenario())


def test_a_factory_is_called_once() -> None:
    calls = []

    async def work() -> None:
        calls.append(1)
        await asyncio.sleep(3600)

    async def scenario() -> None:
        async with background(work, name="factory"):
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert calls == [1]


def test_a_crash_is_logged_when_it_happens_and_shutdown_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def crash() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("database gone")

    async def scenario() -> str:
        async with background(crash(), name="reconciler"):
            for _ in range(100):  # logged while the block still runs, not only at exit
                await asyncio.sleep(0.01)
                if caplog.records:
                    break
            logged_inside = caplog.text
        return logged_inside

    with caplog.at_level(logging.ERROR, logger="service_kit.background"):
        logged_inside = asyncio.run(scenario())
    assert "background task reconciler crashed" in logged_inside
    [record] = caplog.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "database gone" in caplog.text


def test_the_block_s_own_error_propagates_and_the_task_is_still_cancelled() -> None:
    cancelled: list[bool] = []

    async def failing_lifespan() -> None:
        started = asyncio.Event()
        async with background(_forever(started, cancelled), name="ticker"):
            await started.wait()
            raise KeyError("lifespan failed")

    with pytest.raises(KeyError, match="lifespan failed"):
        asyncio.run(failing_lifespan())
    assert cancelled == [True]
