"""Engines for the two supported databases and the URL translation Kamailio needs."""

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


def kamailio_db_url(database_url: str) -> str:
    """Translate a SQLAlchemy URL into the form of Kamailio's db_sqlite / db_mysql modules.

    SQLAlchemy writes an absolute SQLite path as sqlite:////abs/file, Kamailio as
    sqlite:///abs/file; MySQL loses its +driver suffix.
    """
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = url.database or ""
        if not path.startswith("/"):
            raise ValueError(
                f"DATABASE_URL: the SQLite path must be absolute for Kamailio, got '{path}'"
            )
        return f"sqlite://{path}"
    if backend in ("mysql", "mariadb"):
        auth = ""
        if url.username:
            auth = url.username
            if url.password:
                auth += f":{url.password}"
            auth += "@"
        host = url.host or "localhost"
        port = f":{url.port}" if url.port else ""
        return f"mysql://{auth}{host}{port}/{url.database}"
    raise ValueError(f"DATABASE_URL: Kamailio cannot use database '{backend}'")
