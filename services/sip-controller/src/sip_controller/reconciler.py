"""Takes proxies that fail their health check out of the dispatcher set, and back.

A proxy whose address refuses the connection is gone (its process died): it leaves the set on
the first such check. Timeouts and error answers may come from a busy proxy, so only
`failure_threshold` of them in a row count. An unhealthy proxy comes back once it answers and
holds its peers' registrations, or has answered for `rejoin_after_s` (the enable hook's
usrloc wait, which goes on anyway after SYNC_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable

from sip_controller.errors import ControllerError
from sip_controller.proxies import Probe, ProxyService
from sip_controller.store import ProxyRow
from testbed_db import ProxyState

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        service: ProxyService,
        failure_threshold: int,
        rejoin_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._threshold = failure_threshold
        self._rejoin_after_s = rejoin_after_s
        self._clock = clock
        self._failures: defaultdict[str, int] = defaultdict(int)
        self._healthy_since: dict[str, float] = {}  # unhealthy rows answering again

    async def run_once(self) -> None:
        rows = [
            r
            for r in await self._service.rows()
            if r.state in (ProxyState.ENABLED, ProxyState.UNHEALTHY)
            and r.name not in self._service.busy
        ]
        probes = await asyncio.gather(*(self._service.probe(r.http_url) for r in rows))
        for row, probe in zip(rows, probes, strict=True):
            if probe is Probe.HEALTHY:
                self._failures.pop(row.name, None)
                if row.state == ProxyState.UNHEALTHY:
                    await self._rejoin(row)
                continue
            self._healthy_since.pop(row.name, None)
            self._failures[row.name] += 1
            failures = self._failures[row.name]
            if row.state == ProxyState.ENABLED and (
                probe is Probe.DOWN or failures >= self._threshold
            ):
                reason = (
                    "refuses connections (its process is gone)"
                    if probe is Probe.DOWN
                    else f"failed {failures} health checks in a row"
                )
                await self._service.mark_unhealthy(row, reason)

    async def _rejoin(self, row: ProxyRow) -> None:
        since = self._healthy_since.setdefault(row.name, self._clock())
        waited = self._clock() - since
        if waited < self._rejoin_after_s and not await self._service.usrloc_synced(row):
            return
        await self._service.mark_healthy(row)
        self._healthy_since.pop(row.name, None)

    async def run_forever(self, interval: float) -> None:
        while True:
            try:
                await self.run_once()
            except ControllerError as exc:
                log.warning("reconcile pass failed: %s", exc.detail)
            except Exception:
                log.exception("reconcile pass failed")
            await asyncio.sleep(interval)
