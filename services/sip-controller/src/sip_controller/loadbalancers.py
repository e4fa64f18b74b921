"""The set of SIP load balancers the controller keeps in step with the DB."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from kamailio_rpc import AsyncKamailioRpc, DispatcherTarget, RpcError, RpcTransportError
from sip_controller.errors import LoadBalancerUnavailable, OperationTimeout

_POLL_SECONDS = 0.05


class LoadBalancerPool:
    def __init__(self, rpcs: Sequence[AsyncKamailioRpc]) -> None:
        self._rpcs = list(rpcs)

    @property
    def urls(self) -> list[str]:
        return [rpc.url for rpc in self._rpcs]

    async def reload_all(self) -> list[str]:
        """Reload every LB; returns the failures as 'url: reason' (empty when all succeeded)."""
        results = await asyncio.gather(
            *(rpc.dispatcher_reload() for rpc in self._rpcs), return_exceptions=True
        )
        failures = []
        for rpc, result in zip(self._rpcs, results, strict=True):
            if isinstance(result, (RpcError, RpcTransportError)):
                failures.append(f"{rpc.url}: {result}")
            elif isinstance(result, BaseException):
                raise result
        return failures

    async def reload_or_raise(self) -> None:
        failures = await self.reload_all()
        if failures:
            raise LoadBalancerUnavailable("dispatcher.reload failed on " + "; ".join(failures))

    async def views(self) -> dict[str, list[DispatcherTarget] | str]:
        """Each LB's dispatcher list, or the reason it could not be read."""
        results = await asyncio.gather(
            *(rpc.dispatcher_list() for rpc in self._rpcs), return_exceptions=True
        )
        views: dict[str, list[DispatcherTarget] | str] = {}
        for rpc, result in zip(self._rpcs, results, strict=True):
            if isinstance(result, (RpcError, RpcTransportError)):
                views[rpc.url] = f"unreachable: {result}"
            elif isinstance(result, BaseException):
                raise result
            else:
                views[rpc.url] = result
        return views

    async def wait_until_listed(self, sip_uri: str, *, active: bool, within: float) -> None:
        """Return once every LB lists `sip_uri` in the wanted state."""
        deadline = time.monotonic() + within
        pending = list(self._rpcs)
        last_error = ""
        while pending:
            still: list[AsyncKamailioRpc] = []
            for rpc in pending:
                try:
                    targets = await rpc.dispatcher_list()
                except (RpcError, RpcTransportError) as exc:
                    last_error = str(exc)
                    still.append(rpc)
                    continue
                if not any(t.uri == sip_uri and t.active == active for t in targets):
                    still.append(rpc)
            pending = still
            if not pending:
                return
            if time.monotonic() > deadline:
                state = "active" if active else "inactive"
                raise OperationTimeout(
                    f"{sip_uri} not listed {state} within {within:.0f} s by "
                    + ", ".join(r.url for r in pending)
                    + (f" (last error: {last_error})" if last_error else "")
                )
            await asyncio.sleep(_POLL_SECONDS)
