"""Proxy rows in the DB: the testbed's record and the dispatcher row the load balancers read.

Blocking SQLAlchemy calls; the service runs them in a worker thread.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select, text
from sqlalchemy.orm import Session

from testbed_db import PROXY_SET_ID, Dispatcher, ProxyRecord, ProxyState


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
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def ping(self) -> None:
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def get(self, name: str) -> ProxyRow | None:
        with Session(self._engine) as session:
            return self._get(session, name)

    def rows(self) -> list[ProxyRow]:
        with Session(self._engine) as session:
            flags = self._dispatcher_flags(session)
            return [
                ProxyRow(r.name, r.sip_uri, r.http_url, r.state, flags.get(r.name))
                for r in session.scalars(select(ProxyRecord).order_by(ProxyRecord.name))
            ]

    def counts_by_state(self) -> Counter[ProxyState]:
        return Counter(row.state for row in self.rows())

    def snapshot(self, name: str) -> Snapshot:
        return Snapshot(name, self.get(name))

    def restore(self, snapshot: Snapshot) -> None:
        if snapshot.row is None:
            with Session(self._engine) as session, session.begin():
                session.execute(delete(ProxyRecord).where(ProxyRecord.name == snapshot.name))
                self._delete_dispatcher(session, snapshot.name)
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
