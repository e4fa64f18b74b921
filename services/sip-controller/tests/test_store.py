import logging
import sqlite3
import threading
from pathlib import Path

import pymysql
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from sip_controller.errors import DatabaseUnavailable
from sip_controller.store import ProxyStore, is_outage
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


@pytest.mark.slow
def test_a_locked_database_is_waited_out_and_the_outage_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """Another process holds SQLite's write lock past the driver's busy timeout: the write
    waits for it instead of failing, and the log says when the outage began and ended."""
    path = tmp_path / "db.sqlite"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    create_schema(engine)
    store = ProxyStore(engine, outage_seconds=10.0)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    releaser = threading.Timer(1.5, holder.execute, ["COMMIT"])
    releaser.start()
    try:
        with caplog.at_level(logging.WARNING, logger="sip_controller.store"):
            row = store.put("p", "sip:10.0.0.1:5060", "http://10.0.0.1:8080", ProxyState.ENABLED, 0)
    finally:
        releaser.join()
        holder.close()
    assert store.get("p") == row
    messages = [r.getMessage() for r in caplog.records]
    assert any("database unavailable (write p: database is locked)" in m for m in messages)
    assert any(m.startswith("database reachable again after 1.") for m in messages), messages


def test_an_outage_longer_than_the_bound_is_a_503_naming_it(tmp_path: Path):
    path = tmp_path / "db.sqlite"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    create_schema(engine)
    store = ProxyStore(engine, outage_seconds=0.5)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            store.put("p", "sip:10.0.0.1:5060", "http://10.0.0.1:8080", ProxyState.ENABLED, 0)
    finally:
        holder.close()
    assert caught.value.status_code == 503
    assert "database is locked" in caught.value.detail
    assert "(write p)" in caught.value.detail


def test_a_mariadb_that_is_down_is_an_outage_and_a_bad_statement_is_not(tmp_path: Path):
    """Classification only (the restart itself runs against a real MariaDB in
    tests/test_healing.py): connection refused and 'gone away' are waited out."""
    refused = OperationalError("SELECT 1", {}, pymysql.err.OperationalError(2003, "refused"))
    gone = OperationalError("SELECT 1", {}, pymysql.err.OperationalError(2006, "gone away"))
    syntax = ProgrammingError("SELEC", {}, pymysql.err.ProgrammingError(1064, "syntax"))
    missing = OperationalError("x", {}, sqlite3.OperationalError("no such table: x"))
    assert is_outage(refused)
    assert is_outage(gone)
    assert not is_outage(syntax)
    assert not is_outage(missing)
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    store = ProxyStore(engine, outage_seconds=5.0)
    with pytest.raises(OperationalError, match="no such table"):
        store.rows()  # not waited out: there is nothing to wait for
