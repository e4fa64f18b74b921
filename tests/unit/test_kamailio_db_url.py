"""kamailio/entrypoint.sh: the testbed's one translation of DATABASE_URL (SQLAlchemy form) into
Kamailio's db URL, run for real with a stand-in `kamailio` that prints what it was given."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from support import ROOT

ENTRYPOINT = ROOT / "kamailio" / "entrypoint.sh"
# the image's awk is Debian's mawk; a developer's machine may have gawk: both decode alike
AWKS = [awk for awk in ("mawk", "gawk") if shutil.which(awk)]

# (DATABASE_URL, the KAMAILIO_DB_URL Kamailio gets)
TRANSLATED = [
    # SQLite: SQLAlchemy's four slashes before an absolute path, Kamailio's three
    ("sqlite:////var/lib/testbed/testbed.sqlite", "sqlite:///var/lib/testbed/testbed.sqlite"),
    ("sqlite:////tmp/t.sqlite?timeout=30", "sqlite:///tmp/t.sqlite"),
    # MySQL and MariaDB, with or without a driver: Kamailio's db_mysql serves both
    ("mysql://root@localhost/kamailio", "mysql://root@localhost/kamailio"),
    (
        "mysql+pymysql://kam:secret@127.0.0.1:3307/kamailio",
        "mysql://kam:secret@127.0.0.1:3307/kamailio",
    ),
    ("mariadb://u@db/k", "mysql://u@db/k"),
    ("mariadb+pymysql://u:pw@db:3306/k", "mysql://u:pw@db:3306/k"),
    ("mysql+mysqldb://u@db/k", "mysql://u@db/k"),
    # no user, IPv6 host, a query the driver reads (not Kamailio)
    ("mysql+pymysql://db.example:3306/k", "mysql://db.example:3306/k"),
    ("mysql+pymysql://u:pw@[::1]:3307/k", "mysql://u:pw@[::1]:3307/k"),
    ("mysql+pymysql://u:pw@db/k?charset=utf8mb4", "mysql://u:pw@db/k"),
    # percent-encoded user and password (SQLAlchemy's form) are given to Kamailio decoded;
    # '+' is not a space in a URL's userinfo
    ("mysql+pymysql://kam:p%40ss%3Aw%2Fd@db:3306/k", "mysql://kam:p@ss:w/d@db:3306/k"),
    ("mysql+pymysql://kam:a+b%20c%25@db/k", "mysql://kam:a+b c%@db/k"),
    ("mysql+pymysql://k%C3%A4m:%e2%82%ac@db/k", "mysql://käm:€@db/k"),
    ("mysql+pymysql://kam:50%@db/k", "mysql://kam:50%@db/k"),
    ("mysql+pymysql://kam:@db/k", "mysql://kam:@db/k"),
]

# (DATABASE_URL, what the one-line error says)
REFUSED = [
    ("sqlite:///relative.sqlite", "absolute SQLite path"),
    ("sqlite://", "absolute SQLite path"),
    ("postgresql://u:hunter2@h/db", "cannot use database 'postgresql'"),
    ("oracle+cx_oracle://u:hunter2@h/db", "cannot use database 'oracle+cx_oracle'"),
    ("mysql+pymysql://u:hunter2@db:3306", "names no database"),
    ("mysql+pymysql://u:hunter2@db/", "names no database"),
    ("/var/lib/testbed/testbed.sqlite", "not a database URL"),
    # Kamailio's config quotes the URL, so these would end or escape it
    ("mysql+pymysql://u:hunter2%22@db/k", "without them"),
    ("mysql+pymysql://u:hunter2%5C@db/k", "without them"),
]


def run_entrypoint(
    tmp_path: Path, awk: str = "awk", **env: str
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    awk_path = shutil.which(awk)
    assert awk_path is not None, f"{awk} is not installed"
    (bin_dir / "awk").symlink_to(awk_path)
    fake = bin_dir / "kamailio"
    fake.write_text('#!/bin/sh\nprintf "%s" "$KAMAILIO_DB_URL"\n')
    fake.chmod(0o755)
    base = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SIP_ADDRESS": "127.0.0.1",
        "KAMAILIO_RUN_DIR": str(tmp_path / "run"),
    }
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "sip-loadb"],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("awk", AWKS)
@pytest.mark.parametrize(("database_url", "kamailio_url"), TRANSLATED)
def test_database_url_becomes_kamailios(
    tmp_path: Path, awk: str, database_url: str, kamailio_url: str
):
    done = run_entrypoint(tmp_path, awk, DATABASE_URL=database_url)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == kamailio_url


@pytest.mark.parametrize(
    "database_url", [url for url, _ in TRANSLATED if url.startswith(("mysql", "mariadb"))]
)
def test_kamailio_logs_in_as_the_services_do(tmp_path: Path, database_url: str):
    """The user and password Kamailio gets are the ones SQLAlchemy (so pymysql) decodes."""
    url = make_url(database_url)
    done = run_entrypoint(tmp_path, DATABASE_URL=database_url)
    if url.username is None:
        assert "@" not in done.stdout
    else:
        password = "" if url.password is None else f":{url.password}"
        host = f"[{url.host}]" if ":" in str(url.host) else url.host
        assert done.stdout.startswith(f"mysql://{url.username}{password}@{host}")


@pytest.mark.parametrize(("database_url", "reason"), REFUSED)
def test_unusable_database_url_is_one_clear_error(tmp_path: Path, database_url: str, reason: str):
    done = run_entrypoint(tmp_path, DATABASE_URL=database_url)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("entrypoint.sh: DATABASE_URL")
    assert reason in lines[0]
    # the URL may hold a password: an error names the scheme, never the credentials
    assert "hunter2" not in lines[0]


def test_default_database_url_is_the_sqlite_file(tmp_path: Path):
    # run_entrypoint passes no DATABASE_URL unless told
    done = run_entrypoint(tmp_path)
    assert done.stdout == "sqlite:///var/lib/testbed/testbed.sqlite"


def test_kamailio_db_url_given_is_used_as_is(tmp_path: Path):
    done = run_entrypoint(
        tmp_path,
        DATABASE_URL="postgresql://ignored/db",
        KAMAILIO_DB_URL="mysql://kam:p@ss@db:3306/k?x=1",
    )
    assert (done.returncode, done.stdout) == (0, "mysql://kam:p@ss@db:3306/k")
