"""Reconciler decisions on a stand-in service (the real loop runs against Kamailio in
tests/test_controller_api.py::test_reconciler_takes_an_unhealthy_proxy_out_and_brings_it_back)."""

import anyio

from sip_controller.reconciler import Reconciler
from sip_controller.store import ProxyRow
from testbed_db import ProxyState


class StandIn:
    def __init__(self, rows: list[ProxyRow]) -> None:
        self.rows_ = {r.name: r for r in rows}
        self.health: dict[str, bool] = {}
        self.busy: set[str] = set()
        self.actions: list[tuple[str, str]] = []

    async def rows(self) -> list[ProxyRow]:
        return list(self.rows_.values())

    async def is_healthy(self, http_url: str) -> bool:
        return self.health.get(http_url, True)

    async def mark_unhealthy(self, row: ProxyRow) -> None:
        self.actions.append(("unhealthy", row.name))
        self.rows_[row.name] = ProxyRow(
            row.name, row.sip_uri, row.http_url, ProxyState.UNHEALTHY, 1
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
