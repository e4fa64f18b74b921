"""Reconciler decisions on a stand-in service (the real loop runs against Kamailio in
tests/test_controller_api.py::test_reconciler_takes_an_unhealthy_proxy_out_and_brings_it_back)."""

import anyio

from sip_controller.proxies import Probe
from sip_controller.reconciler import Reconciler
from sip_controller.store import ProxyRow
from testbed_db import ProxyState


class StandIn:
    def __init__(self, rows: list[ProxyRow]) -> None:
        self.rows_ = {r.name: r for r in rows}
        self.health: dict[str, bool | Probe] = {}
        self.synced: dict[str, bool] = {}
        self.busy: set[str] = set()
        self.actions: list[tuple[str, str]] = []

    async def rows(self) -> list[ProxyRow]:
        return list(self.rows_.values())

    async def probe(self, http_url: str) -> Probe:
        health = self.health.get(http_url, True)
        if isinstance(health, Probe):
            return health
        return Probe.HEALTHY if health else Probe.FAILING

    async def usrloc_synced(self, row: ProxyRow) -> bool:
        return self.synced.get(row.name, True)

    async def mark_unhealthy(self, row: ProxyRow, reason: str) -> None:
        self.actions.append(("unhealthy", row.name))
        self.rows_[row.name] = ProxyRow(
            row.name, row.sip_uri, row.http_url, ProxyState.UNHEALTHY, None
        )

    async def mark_healthy(self, row: ProxyRow) -> None:
        self.actions.append(("enabled", row.name))
        self.rows_[row.name] = ProxyRow(row.name, row.sip_uri, row.http_url, ProxyState.ENABLED, 0)


def _row(name: str, state: ProxyState) -> ProxyRow:
    return ProxyRow(name, f"sip:{name}:5060", f"http://{name}:8080", state, 0)


def test_threshold_then_recovery():
    service = StandIn([_row("a", ProxyState.ENABLED), _row("b", ProxyState.DISABLED)])
    reconciler = Reconciler(service, failure_threshold=3)  # type: ignore[arg-type]
    service.health["http://a:8080"] = False
    service.health["http://b:8080"] = False

    async def passes(n: int) -> None:
        for _ in range(n):
            await reconciler.run_once()

    anyio.run(passes, 2)
    assert service.actions == []  # two failures are not enough
    anyio.run(passes, 1)
    assert service.actions == [("unhealthy", "a")]  # disabled proxies are left alone
    service.health["http://a:8080"] = True
    anyio.run(passes, 1)
    assert service.actions == [("unhealthy", "a"), ("enabled", "a")]


def test_a_single_success_resets_the_count():
    service = StandIn([_row("a", ProxyState.ENABLED)])
    reconciler = Reconciler(service, failure_threshold=2)  # type: ignore[arg-type]
    for healthy in (False, True, False, True, False):
        service.health["http://a:8080"] = healthy
        anyio.run(reconciler.run_once)
    assert service.actions == []


def test_busy_proxies_are_skipped():
    service = StandIn([_row("a", ProxyState.ENABLED)])
    service.busy.add("a")
    service.health["http://a:8080"] = False
    reconciler = Reconciler(service, failure_threshold=1)  # type: ignore[arg-type]
    anyio.run(reconciler.run_once)
    assert service.actions == []


def test_a_proxy_that_refuses_connections_leaves_at_the_first_check():
    """Its process is gone: waiting for the threshold would send its share of the calls into
    nothing for threshold x interval seconds."""
    service = StandIn([_row("a", ProxyState.ENABLED), _row("b", ProxyState.ENABLED)])
    reconciler = Reconciler(service, failure_threshold=3)  # type: ignore[arg-type]
    service.health["http://a:8080"] = Probe.DOWN
    anyio.run(reconciler.run_once)
    assert service.actions == [("unhealthy", "a")]
    assert service.rows_["a"].dispatcher_flags is None


def test_an_unhealthy_proxy_rejoins_once_synced_or_after_the_sync_timeout():
    now = [0.0]
    service = StandIn([_row("a", ProxyState.UNHEALTHY), _row("b", ProxyState.UNHEALTHY)])
    reconciler = Reconciler(
        service,  # type: ignore[arg-type]  # a stand-in, as in the tests above
        failure_threshold=3,
        rejoin_after_s=10.0,
        clock=lambda: now[0],
    )
    service.synced = {"a": False, "b": False}  # restarted: their usrloc is still empty
    anyio.run(reconciler.run_once)
    assert service.actions == []
    service.synced["a"] = True
    now[0] = 1.0
    anyio.run(reconciler.run_once)
    assert service.actions == [("enabled", "a")]
    now[0] = 10.5  # b never caught up: back anyway, as the enable hook does after its wait
    anyio.run(reconciler.run_once)
    assert service.actions == [("enabled", "a"), ("enabled", "b")]
