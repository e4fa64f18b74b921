"""Engines for the two supported databases.

Kamailio reads the same DATABASE_URL; kamailio/entrypoint.sh alone turns it into Kamailio's form.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so Kamailio can read while we write."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if url.get_backend_name() in ("mysql", "mariadb"):
        if url.get_driver_name() != "pymysql":
            url = url.set(drivername=f"{url.get_backend_name()}+pymysql")
        return create_engine(url, pool_pre_ping=True, pool_recycle=3600, **kwargs)
    raise ValueError(
        f"DATABASE_URL: unsupported database '{url.get_backend_name()}' "
        "(use sqlite:////absolute/path.sqlite or mysql+pymysql://user:pass@host:port/db)"
    )
