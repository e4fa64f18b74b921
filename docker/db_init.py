#!/usr/bin/env python
"""testbed-db-init: the sip-controller's schema and seed step, on its own.

The sip-controller creates the schema and seeds the subscribers on every start; this runs the
same step once (compose's one-shot service, the chart's hook Job) or waits for it:

    testbed-db-init [--mode init|check|ping] [--timeout SECONDS]

- init (default): wait for the database, create missing tables, write Kamailio's `version`
  rows and seed subscribers SUBSCRIBER_FIRST..SUBSCRIBER_LAST (idempotent);
- check: wait until the tables and version rows Kamailio checks at start-up exist (an init
  container of the Kamailio pods, which would otherwise crash-loop until they do);
- ping: wait until the database answers (the sip-controller's init container).

Settings come from the sip-controller's own (DATABASE_URL, SIP_DOMAIN, SUBSCRIBER_*), so the
same environment configures both. Exit 0 when done, 1 when the timeout passes first.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from sip_controller.config import Settings
from testbed_db import (
    KAMAILIO_TABLE_VERSIONS,
    SubscriberSeed,
    Version,
    create_schema,
    make_engine,
    seed_subscribers,
)

log = logging.getLogger("testbed-db-init")


def ping(engine: Engine) -> None:
    with engine.connect():
        pass


def missing_schema(engine: Engine) -> list[str]:
    """What Kamailio would refuse to start without: tables and their version rows."""
    tables = set(inspect(engine).get_table_names())
    missing = [t for t in KAMAILIO_TABLE_VERSIONS if t not in tables]
    if missing:
        return [f"table {t}" for t in missing]
    with Session(engine) as session:
        versions = {v.table_name: v.table_version for v in session.scalars(select(Version))}
    return [
        f"version row {table}={version}"
        for table, version in KAMAILIO_TABLE_VERSIONS.items()
        if versions.get(table) != version
    ]


def init(engine: Engine, settings: Settings) -> None:
    create_schema(engine)
    seed = SubscriberSeed(
        domain=settings.sip_domain,
        first=settings.subscriber_first,
        last=settings.subscriber_last,
        password_template=settings.subscriber_password_template,
    )
    written = seed_subscribers(engine, seed)
    log.info("schema ready; %d subscriber rows written", written)


def run(mode: str, timeout: float, interval: float = 2.0) -> bool:
    settings = Settings()
    engine = make_engine(settings.database_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                ping(engine)
                if mode == "init":
                    init(engine, settings)
                    return True
                if mode == "ping":
                    return True
                missing = missing_schema(engine)
                if not missing:
                    log.info("schema present")
                    return True
                reason = "missing " + ", ".join(missing)
            except SQLAlchemyError as exc:
                reason = f"database not ready: {exc.__class__.__name__}: {exc}".splitlines()[0]
            if time.monotonic() >= deadline:
                log.error("%s; giving up after %.0f s", reason, timeout)
                return False
            log.info("%s; retrying in %.0f s", reason, interval)
            time.sleep(interval)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="testbed-db-init", description="create the testbed schema, or wait for it"
    )
    parser.add_argument("--mode", choices=("init", "check", "ping"), default="init")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to keep trying")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between tries")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return 0 if run(args.mode, args.timeout, args.interval) else 1


if __name__ == "__main__":
    sys.exit(main())
