"""Proxy rows in the DB: the testbed's record and the dispatcher row the load balancers read.

Blocking SQLAlchemy calls; the service runs them in a worker thread. An operation that meets
the DB down, restarting or locked is retried until `outage_seconds` have passed since it began
(then DatabaseUnavailable, 503); the outage is logged once when it begins and once when it ends.
MariaDB's stale pooled connections are replaced by the engine's pre-ping.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine, delete, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from sip_controller.errors import DatabaseUnavailable
from testbed_db import PROXY_SET_ID, Dispatcher, ProxyRecord, ProxyState

log = logging.getLogger(__name__)

T = TypeVar("T")

# MySQL client errors of a server that is down, restarting or dropped the connection
# (2002/2003 cannot connect, 2006 gone away, 2013 lost, 2055 lost at handshake), and server
# errors while it shuts down (1053) or kills the connection (1927)
_MYSQL_UNAVAILABLE = {1053, 1927, 2002, 2003, 2006, 2013, 2055}
_SQLITE_UNAVAILABLE = ("database is locked", "database table is locked", "unable to open")


def is_outage(exc: DBAPIError) -> bool:
    """Is this the DB being unreachable or locked (worth waiting out), not a bad statement?"""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return any(fragment in str(orig) for fragment in _SQLITE_UNAVAILABLE)
    args: tuple[object, ...] = getattr(orig, "args", ())
    code = args[0] if args else None
    return isinstance(code, int) and code in _MYSQL_UNAVAILABLE


def _brief(exc: DBAPIError) -> str:
    return str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]


@dataclass(frozen=True)
class ProxyRow:
    name: str
    sip_uri: str
    http_url: str
    state: ProxyState
    dispatcher_flags: int | None  # None: no dispatcher row (the LBs never pick it)


@dataclass(frozen=True)
class Snapshot:
    """What one proxy's rows looked like, to put back when a change cannot be applied."""

    name: str
    row: ProxyRow | None


class ProxyStore:
    def __init__(
        self,
        engine: Engine,
        outage_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._engine = engine
        self._outage_seconds = outage_seconds
        self._clock = clock
        self._sleep = sleep
        self._outage_lock = threading.Lock()
        self._outage_since: float | None = None

    # -- riding out outages ------------------------------------------------------------------

    def _retrying(self, what: str, operation: Callable[[], T]) -> T:
        start = self._clock()
        delay = 0.1
        while True:
            try:
                result = operation()
            except DBAPIError as exc:
                if not is_outage(exc):
                    raise
                now = self._clock()
                self._outage_began(what, exc, now)
                if now - start >= self._outage_seconds:
                    raise DatabaseUnavailable(
                        f"database unavailable for {now - start:.0f} s ({what}): {_brief(exc)}"
                    ) from exc
                self._sleep(min(delay, max(0.0, start + self._outage_seconds - now)))
                delay = min(delay * 2, 2.0)
                continue
            self._outage_ended()
            return result

    def _outage_began(self, what: str, exc: DBAPIError, now: float) -> None:
        with self._outage_lock:
            if self._outage_since is not None:
                return
            self._outage_since = now
        log.warning(
            "database unavailable (%s: %s); operations wait up to %.0f s for it",
            what,
            _brief(exc),
            self._outage_seconds,
        )

    def _outage_ended(self) -> None:
        with self._outage_lock:
            since, self._outage_since = self._outage_since, None
        if since is not None:
            log.warning("database reachable again after %.1f s", self._clock() - since)

    def wait_reachable(self) -> None:
        self._retrying("connect", self.ping)

    # -- operations --------------------------------------------------------------------------

    def ping(self) -> None:
        """One try (the health check reports an outage, it does not wait it out)."""
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def get(self, name: str) -> ProxyRow | None:
        def read() -> ProxyRow | None:
            with Session(self._engine) as session:
                return self._get(session, name)

        return self._retrying(f"read {name}", read)

    def rows(self) -> list[ProxyRow]:
        return self._retrying("read proxies", self._rows)

    def _rows(self) -> list[ProxyRow]:
        with Session(self._engine) as session:
            flags = self._dispatcher_flags(session)
            return [
                ProxyRow(r.name, r.sip_uri, r.http_url, r.state, flags.get(r.name))
                for r in session.scalars(select(ProxyRecord).order_by(ProxyRecord.name))
            ]

    def counts_by_state(self) -> Counter[ProxyState]:
        """One try: the metrics refresh runs on the event loop and must not wait."""
        return Counter(row.state for row in self._rows())

    def snapshot(self, name: str) -> Snapshot:
        return Snapshot(name, self.get(name))

    def restore(self, snapshot: Snapshot) -> None:
        if snapshot.row is None:

            def forget() -> None:
                with Session(self._engine) as session, session.begin():
                    session.execute(delete(ProxyRecord).where(ProxyRecord.name == snapshot.name))
                    self._delete_dispatcher(session, snapshot.name)

            self._retrying(f"forget {snapshot.name}", forget)
            return
        row = snapshot.row
        self.put(row.name, row.sip_uri, row.http_url, row.state, row.dispatcher_flags)

    def put(
        self,
        name: str,
        sip_uri: str,
        http_url: str,
        state: ProxyState,
        dispatcher_flags: int | None,
    ) -> ProxyRow:
        """Write both rows in one transaction; `dispatcher_flags=None` removes it from the set."""

        def write() -> None:
            with Session(self._engine) as session, session.begin():
                record = session.get(ProxyRecord, name)
                if record is None:
                    record = ProxyRecord(name=name, sip_uri=sip_uri, http_url=http_url, state=state)
                    session.add(record)
                else:
                    record.sip_uri, record.http_url, record.state = sip_uri, http_url, state
                self._delete_dispatcher(session, name)
                if dispatcher_flags is not None:
                    session.add(
                        Dispatcher(
                            setid=PROXY_SET_ID,
                            destination=sip_uri,
                            flags=dispatcher_flags,
                            priority=0,
                            attrs="",
                            description=name,
                        )
                    )

        self._retrying(f"write {name}", write)
        return ProxyRow(name, sip_uri, http_url, state, dispatcher_flags)

    @staticmethod
    def _delete_dispatcher(session: Session, name: str) -> None:
        session.execute(
            delete(Dispatcher).where(
                Dispatcher.setid == PROXY_SET_ID, Dispatcher.description == name
            )
        )

    @staticmethod
    def _dispatcher_flags(session: Session) -> dict[str, int]:
        rows = session.execute(
            select(Dispatcher.description, Dispatcher.flags).where(Dispatcher.setid == PROXY_SET_ID)
        )
        return {description: flags for description, flags in rows}

    def _get(self, session: Session, name: str) -> ProxyRow | None:
        record = session.get(ProxyRecord, name)
        if record is None:
            return None
        return ProxyRow(
            record.name,
            record.sip_uri,
            record.http_url,
            record.state,
            self._dispatcher_flags(session).get(name),
        )
