"""Proxy lifecycle: what the postStart (enable) and preStop (disable) hooks and the reconciler do.

Only proxies that serve or drain have a dispatcher row. Kamailio's hash (algorithm 0) counts
inactive rows and sends their share to the next active one, so a disabled proxy's row is
removed once it has drained, and an unhealthy one's at once: traffic spreads evenly over the rest.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import httpx

from kamailio_rpc import AsyncKamailioRpc, DispatcherTarget, RpcError, RpcTransportError
from sip_controller.addresses import parse_host_port, resolve_all, validate_name
from sip_controller.config import Settings
from sip_controller.errors import (
    InvalidRequest,
    LoadBalancerUnavailable,
    OperationTimeout,
    ProxyNotReady,
    UnknownProxy,
)
from sip_controller.loadbalancers import LoadBalancerPool
from sip_controller.platform import PlatformProxy, settle
from sip_controller.sources import AddressSource
from sip_controller.store import ProxyRow, ProxyStore
from testbed_db import DISPATCHER_FLAG_ACTIVE, DISPATCHER_FLAG_INACTIVE, ProxyState

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.1
# a request the LB forwarded just before its reload may still be on its way to the proxy
_DRAIN_SETTLE_SECONDS = 0.5


class Probe(enum.Enum):
    """One health check of a proxy."""

    HEALTHY = "healthy"
    # nothing listens at its address (connection refused): the process is gone, no doubt
    DOWN = "down"
    # an error answer or a timeout: a busy proxy may recover, so only repeated ones count
    FAILING = "failing"


@dataclass(frozen=True)
class DrainResult:
    drained: bool
    open_transactions: int
    waited_seconds: float


@dataclass(frozen=True)
class Registrations:
    proxy: str
    users: list[str]


class ProxyService:
    def __init__(
        self,
        store: ProxyStore,
        loadbalancers: LoadBalancerPool,
        rpc_for: Callable[[str], AsyncKamailioRpc],
        http: httpx.AsyncClient,
        settings: Settings,
        source: AddressSource,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._source = source
        self._store = store
        self._lbs = loadbalancers
        self._rpc_for = rpc_for
        self._http = http
        self._settings = settings
        self._on_change = on_change
        # one change to the DB + LB reload at a time; waits (health, drain) happen outside it
        self._lock = asyncio.Lock()
        self.busy: set[str] = set()

    # -- reading -----------------------------------------------------------------------------

    async def rows(self) -> list[ProxyRow]:
        return await anyio.to_thread.run_sync(self._store.rows)

    async def get(self, name: str) -> ProxyRow:
        row = await anyio.to_thread.run_sync(self._store.get, name)
        if row is None:
            raise UnknownProxy(f"no proxy named '{name}' has ever been enabled")
        return row

    async def loadbalancer_views(self) -> dict[str, list[DispatcherTarget] | str]:
        return await self._lbs.views()

    async def registrations(self, proxy: str | None = None) -> Registrations:
        if proxy is not None:
            row = await self.get(proxy)
        else:
            serving = [r for r in await self.rows() if r.state == ProxyState.ENABLED]
            if not serving:
                raise ProxyNotReady("no enabled proxy to read registrations from")
            row = serving[0]
        rpc = self._rpc_for(row.http_url)
        try:
            users = await rpc.registered_aors()
        except (RpcError, RpcTransportError) as exc:
            raise ProxyNotReady(f"{row.name}: ul.dump failed: {exc}") from exc
        return Registrations(proxy=row.name, users=sorted(users))

    # -- hooks -------------------------------------------------------------------------------

    async def enable(
        self, name: str, sip_address: str | None = None, http_address: str | None = None
    ) -> ProxyRow:
        validate_name(name, self._settings.proxy_name_pattern)
        sip_claim = parse_host_port(sip_address, "sip_address", "sip") if sip_address else None
        http_claim = parse_host_port(http_address, "http_address", "http") if http_address else None
        # the platform says where the proxy is; the body may only agree (else 403). Nothing
        # below (health probe, DB, LB reload) runs for a refused address.
        proxy = await self._source.lookup(name)
        addresses = await anyio.to_thread.run_sync(
            lambda: settle(proxy, sip_claim, http_claim, _resolved(proxy))
        )
        self.busy.add(name)
        try:
            await self._wait_healthy(name, addresses.http_url)
            await self._wait_usrloc_synced(name, addresses.http_url)
            row = await self._apply(
                name,
                addresses.sip_uri,
                addresses.http_url,
                ProxyState.ENABLED,
                DISPATCHER_FLAG_ACTIVE,
            )
            await self._lbs.wait_until_listed(
                row.sip_uri, active=True, within=self._settings.enable_timeout_seconds
            )
            log.info("enabled %s at %s", name, row.sip_uri)
            return row
        finally:
            self.busy.discard(name)

    async def disable(
        self, name: str, grace_seconds: float | None = None
    ) -> tuple[ProxyRow, DrainResult]:
        validate_name(name, self._settings.proxy_name_pattern)
        grace = self._settings.drain_grace_seconds if grace_seconds is None else grace_seconds
        if grace < 0:
            raise InvalidRequest(f"grace_seconds must be >= 0, got {grace}")
        current = await self.get(name)
        self.busy.add(name)
        try:
            if current.dispatcher_flags is not None:
                await self._apply(
                    name,
                    current.sip_uri,
                    current.http_url,
                    ProxyState.DRAINING,
                    DISPATCHER_FLAG_INACTIVE,
                )
            drain = await self._drain(current, grace)
            row = await self._apply(
                name, current.sip_uri, current.http_url, ProxyState.DISABLED, None
            )
            log.info(
                "disabled %s (drained=%s, %d open, %.1f s)",
                name,
                drain.drained,
                drain.open_transactions,
                drain.waited_seconds,
            )
            return row, drain
        finally:
            self.busy.discard(name)

    # -- reconciler entry points -------------------------------------------------------------

    async def mark_unhealthy(self, row: ProxyRow, reason: str) -> None:
        # out of the set, not merely inactive: the hash (algorithm 0) would send an inactive
        # row's share of the calls to the next proxy, which would then carry double
        await self._apply(row.name, row.sip_uri, row.http_url, ProxyState.UNHEALTHY, None)
        log.warning("%s %s: taken out of the load balancers' set", row.name, reason)

    async def mark_healthy(self, row: ProxyRow) -> None:
        await self._apply(
            row.name, row.sip_uri, row.http_url, ProxyState.ENABLED, DISPATCHER_FLAG_ACTIVE
        )
        log.info("%s is healthy again: back in the load balancers' set", row.name)

    async def usrloc_synced(self, row: ProxyRow) -> bool:
        """Does `row` hold as many registrations as an enabled peer? (A restarted proxy pulls
        them over DMQ; until then its INVITEs would meet an empty location table.)"""
        peers = [
            r for r in await self.rows() if r.state == ProxyState.ENABLED and r.name != row.name
        ]
        if not peers:
            return True
        try:
            target = len(await self._rpc_for(peers[0].http_url).registered_aors())
            have = len(await self._rpc_for(row.http_url).registered_aors())
        except (RpcError, RpcTransportError):
            return False
        return have >= target

    async def probe(self, http_url: str) -> Probe:
        try:
            response = await self._http.get(
                f"{http_url}/health", timeout=self._settings.health_check_timeout_seconds
            )
        except httpx.ConnectError:
            return Probe.DOWN
        except httpx.HTTPError:
            return Probe.FAILING
        return Probe.HEALTHY if response.status_code == 200 else Probe.FAILING

    async def is_healthy(self, http_url: str) -> bool:
        return await self.probe(http_url) is Probe.HEALTHY

    # -- internals ---------------------------------------------------------------------------

    async def _apply(
        self, name: str, sip_uri: str, http_url: str, state: ProxyState, flags: int | None
    ) -> ProxyRow:
        """Write the rows and reload every LB; on an LB failure put the rows back and say why."""
        async with self._lock:
            snapshot = await anyio.to_thread.run_sync(self._store.snapshot, name)
            row = await anyio.to_thread.run_sync(
                lambda: self._store.put(name, sip_uri, http_url, state, flags)
            )
            failures = await self._lbs.reload_all()
            if failures:
                await anyio.to_thread.run_sync(self._store.restore, snapshot)
                await self._lbs.reload_all()  # the reachable ones go back to the old set
                self._on_change()
                raise LoadBalancerUnavailable(
                    f"{name} left as it was: dispatcher.reload failed on " + "; ".join(failures)
                )
        self._on_change()
        return row

    async def _wait_healthy(self, name: str, http_url: str) -> None:
        deadline = time.monotonic() + self._settings.enable_timeout_seconds
        while not await self.is_healthy(http_url):
            if time.monotonic() > deadline:
                raise ProxyNotReady(
                    f"{name}: {http_url}/health did not answer 200 within "
                    f"{self._settings.enable_timeout_seconds:.0f} s"
                )
            await asyncio.sleep(_POLL_SECONDS)

    async def _wait_usrloc_synced(self, name: str, http_url: str) -> None:
        """A new proxy pulls the location table from a peer (dmq_usrloc sync); wait for it so
        that its first INVITEs do not meet an empty table."""
        peers = [r for r in await self.rows() if r.state == ProxyState.ENABLED and r.name != name]
        if not peers or self._settings.sync_timeout_seconds <= 0:
            return
        try:
            target = len(await self._rpc_for(peers[0].http_url).registered_aors())
        except (RpcError, RpcTransportError) as exc:
            log.warning(
                "%s: cannot read %s's registrations to compare: %s", name, peers[0].name, exc
            )
            return
        rpc = self._rpc_for(http_url)
        deadline = time.monotonic() + self._settings.sync_timeout_seconds
        have = -1
        while time.monotonic() < deadline:
            try:
                have = len(await rpc.registered_aors())
            except (RpcError, RpcTransportError):
                have = -1
            if have >= target:
                return
            await asyncio.sleep(_POLL_SECONDS)
        log.warning(
            "%s: usrloc has %d of %d registrations after %.0f s; enabling anyway",
            name,
            have,
            target,
            self._settings.sync_timeout_seconds,
        )

    async def _drain(self, row: ProxyRow, grace: float) -> DrainResult:
        start = time.monotonic()
        rpc = self._rpc_for(row.http_url)
        open_now = 0
        while True:
            try:
                open_now = (await rpc.tm_stats()).open
            except (RpcError, RpcTransportError):
                # the proxy is gone: nothing left to wait for
                return DrainResult(True, 0, time.monotonic() - start)
            waited = time.monotonic() - start
            if open_now == 0 and waited >= min(_DRAIN_SETTLE_SECONDS, grace):
                return DrainResult(True, 0, waited)
            if open_now and waited >= grace:
                return DrainResult(False, open_now, waited)
            await asyncio.sleep(_POLL_SECONDS)


def _resolved(proxy: PlatformProxy) -> dict[str, tuple[str, ...]]:
    """The platform's hosts resolved (only those: a claimed host is never looked up)."""
    return {hp.host: resolve_all(hp.host) for hp in (proxy.sip, proxy.http)}


__all__ = ["DrainResult", "OperationTimeout", "Probe", "ProxyService", "Registrations"]
