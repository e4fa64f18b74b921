"""Takes proxies that keep failing their health check out of the dispatcher set, and back."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from sip_controller.errors import ControllerError
from sip_controller.proxies import ProxyService
from testbed_db import ProxyState

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, service: ProxyService, failure_threshold: int) -> None:
        self._service = service
        self._threshold = failure_threshold
        self._failures: defaultdict[str, int] = defaultdict(int)

    async def run_once(self) -> None:
        rows = [
            r
            for r in await self._service.rows()
            if r.state in (ProxyState.ENABLED, ProxyState.UNHEALTHY)
            and r.name not in self._service.busy
        ]
        healthy = await asyncio.gather(*(self._service.is_healthy(r.http_url) for r in rows))
        for row, ok in zip(rows, healthy, strict=True):
            if ok:
                self._failures.pop(row.name, None)
                if row.state == ProxyState.UNHEALTHY:
                    await self._service.mark_healthy(row)
                continue
            self._failures[row.name] += 1
            if row.state == ProxyState.ENABLED and self._failures[row.name] >= self._threshold:
                await self._service.mark_unhealthy(row)

    async def run_forever(self, interval: float) -> None:
        while True:
            try:
                await self.run_once()
            except ControllerError as exc:
                log.warning("reconcile pass failed: %s", exc.detail)
            except Exception:
                log.exception("reconcile pass failed")
            await asyncio.sleep(interval)
