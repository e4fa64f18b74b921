import re
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from testbed_db import (
    KAMAILIO_TABLE_VERSIONS,
    Subscriber,
    SubscriberSeed,
    Version,
    create_schema,
    make_engine,
    seed_subscribers,
)

KAMAILIO_SQLITE_SCHEMAS = Path("/usr/share/kamailio/db_sqlite")


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    yield engine
    engine.dispose()


def _reference(table: str) -> tuple[list[str], int]:
    """Column names and table_version of `table` in Kamailio's own SQLite schema files."""
    for sql_file in KAMAILIO_SQLITE_SCHEMAS.glob("*-create.sql"):
        text = sql_file.read_text()
        create = re.search(rf"CREATE TABLE {table} \((.*?)\n\);", text, re.S)
        if not create:
            continue
        columns = [
            line.split()[0]
            for line in create.group(1).strip().splitlines()
            if not line.strip().startswith("CONSTRAINT")
        ]
        version = re.search(rf"values \('{table}','(\d+)'\)", text)
        assert version, f"no version row for {table} in {sql_file}"
        return columns, int(version.group(1))
    raise AssertionError(f"table {table} not found under {KAMAILIO_SQLITE_SCHEMAS}")


@pytest.mark.parametrize("table", ["version", "subscriber", "dispatcher"])
def test_tables_match_kamailio_reference_schema(engine, table):
    create_schema(engine)
    columns, version = _reference(table)
    ours = [c["name"] for c in inspect(engine).get_columns(table)]
    assert ours == columns
    assert KAMAILIO_TABLE_VERSIONS[table] == version


def test_create_schema_is_idempotent_and_repairs_versions(engine):
    create_schema(engine)
    with Session(engine) as s, s.begin():
        s.scalars(select(Version).where(Version.table_name == "dispatcher")).one().table_version = 1
    create_schema(engine)
    create_schema(engine)
    with Session(engine) as s:
        rows = {v.table_name: v.table_version for v in s.scalars(select(Version))}
    assert rows == KAMAILIO_TABLE_VERSIONS


@pytest.mark.slow
def test_seed_inserts_range_once_and_updates_changed_passwords(engine):
    create_schema(engine)
    seed = SubscriberSeed(domain="testbed.local", first=0, last=9999)
    assert seed_subscribers(engine, seed) == 10000
    assert seed_subscribers(engine, seed) == 0
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 10000
        user = s.scalars(select(Subscriber).where(Subscriber.username == "0042")).one()
        assert user.password == "0042"
        assert user.domain == "testbed.local"
    changed = SubscriberSeed(
        domain="testbed.local", first=40, last=44, password_template="pw-{username}"
    )
    assert seed_subscribers(engine, changed) == 5
    with Session(engine) as s:
        user = s.scalars(select(Subscriber).where(Subscriber.username == "0042")).one()
        assert user.password == "pw-0042"


def test_seed_ha1_is_the_digest_of_user_realm_password(engine):
    import hashlib

    create_schema(engine)
    seed_subscribers(engine, SubscriberSeed(domain="example.org", first=7, last=7))
    with Session(engine) as s:
        user = s.scalars(select(Subscriber)).one()
    assert user.username == "0007"
    assert user.ha1 == hashlib.md5(b"0007:example.org:0007").hexdigest()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first": 5, "last": 4}, "empty"),
        ({"first": 0, "last": 10000}, "does not fit"),
        ({"password_template": "{user}"}, "template"),
    ],
)
def test_seed_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SubscriberSeed(domain="d", **kwargs)


def test_sqlite_engine_uses_wal(engine):
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
