from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from sip_controller.store import ProxyStore
from testbed_db import Dispatcher, ProxyState, create_schema, make_engine


@pytest.fixture
def store(tmp_path: Path) -> ProxyStore:
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    create_schema(engine)
    return ProxyStore(engine)


def _dispatcher_rows(store: ProxyStore) -> list[tuple[int, str, int, str]]:
    with Session(store._engine) as session:
        return [
            (d.setid, d.destination, d.flags, d.description)
            for d in session.scalars(select(Dispatcher))
        ]


def test_put_keeps_one_dispatcher_row_per_proxy(store: ProxyStore):
    store.put("sip-proxy-0", "sip:127.0.1.1:5060", "http://127.0.1.1:8080", ProxyState.ENABLED, 0)
    store.put("sip-proxy-0", "sip:127.0.1.1:5060", "http://127.0.1.1:8080", ProxyState.DRAINING, 1)
    assert _dispatcher_rows(store) == [(1, "sip:127.0.1.1:5060", 1, "sip-proxy-0")]
    store.put(
        "sip-proxy-0", "sip:127.0.1.1:5060", "http://127.0.1.1:8080", ProxyState.DISABLED, None
    )
    assert _dispatcher_rows(store) == []
    row = store.get("sip-proxy-0")
    assert row is not None
    assert (row.state, row.dispatcher_flags) == (ProxyState.DISABLED, None)


def test_restore_puts_back_a_snapshot_and_forgets_new_proxies(store: ProxyStore):
    store.put("sip-proxy-0", "sip:127.0.1.1:5060", "http://127.0.1.1:8080", ProxyState.ENABLED, 0)
    before = store.snapshot("sip-proxy-0")
    store.put(
        "sip-proxy-0", "sip:127.0.1.1:5060", "http://127.0.1.1:8080", ProxyState.DISABLED, None
    )
    store.restore(before)
    assert store.get("sip-proxy-0") == before.row
    assert _dispatcher_rows(store) == [(1, "sip:127.0.1.1:5060", 0, "sip-proxy-0")]

    absent = store.snapshot("sip-proxy-1")
    store.put("sip-proxy-1", "sip:127.0.1.2:5060", "http://127.0.1.2:8080", ProxyState.ENABLED, 0)
    store.restore(absent)
    assert store.get("sip-proxy-1") is None
    assert len(_dispatcher_rows(store)) == 1


def test_rows_and_counts(store: ProxyStore):
    store.put("b", "sip:10.0.0.2:5060", "http://10.0.0.2:8080", ProxyState.ENABLED, 0)
    store.put("a", "sip:10.0.0.1:5060", "http://10.0.0.1:8080", ProxyState.UNHEALTHY, 1)
    assert [r.name for r in store.rows()] == ["a", "b"]
    assert store.counts_by_state() == {ProxyState.ENABLED: 1, ProxyState.UNHEALTHY: 1}
    store.ping()
