"""A private MariaDB server for local mode and the tests (datadir inside the state directory)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

DATABASE = "kamailio"
USER = "testbed"


def new_password() -> str:
    """A password per testbed: the server listens on 127.0.0.1, where every local user (and a
    well-known default) could otherwise rewrite the dispatcher table. URL- and SQL-safe."""
    return secrets.token_urlsafe(24)


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        raise FileNotFoundError(
            f"{name} not found: install the mariadb-server package (scripts/setup.sh)"
        )
    return found


@dataclass(frozen=True)
class LocalMariaDB:
    directory: Path
    port: int
    password: str  # of USER, kept in the testbed's state file (database_url, mode 0600)

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    @property
    def socket(self) -> Path:
        return self.directory / "mysqld.sock"

    @property
    def url(self) -> str:
        return f"mysql+pymysql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def initialise(self) -> None:
        """Create the system tables once (mariadb-install-db); later starts reuse the datadir."""
        if (self.datadir / "mysql").is_dir():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                _binary("mariadb-install-db"),
                "--no-defaults",
                "--user=root",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{result.stdout}\n{result.stderr}")

    def command(self) -> list[str]:
        return [
            _binary("mariadbd"),
            "--no-defaults",
            "--user=root",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--pid-file={self.directory / 'mariadbd.pid'}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--max-connections=500",
        ]

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                pymysql.connect(
                    unix_socket=str(self.socket), user="root", connect_timeout=2
                ).close()
                return
            except pymysql.MySQLError as exc:
                last = exc
                time.sleep(0.2)
        raise TimeoutError(f"MariaDB on {self.socket} not ready within {timeout:.0f} s: {last}")

    def provision(self) -> None:
        """The testbed's database and a TCP user for Kamailio and the services."""
        conn = pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`")
                for host in ("127.0.0.1", "localhost"):
                    # OR REPLACE: a datadir kept from an earlier testbed has its old password
                    cur.execute(
                        "CREATE OR REPLACE USER %s@%s IDENTIFIED BY %s",
                        (USER, host, self.password),
                    )
                    cur.execute(f"GRANT ALL PRIVILEGES ON `{DATABASE}`.* TO %s@%s", (USER, host))
        finally:
            conn.close()

    def ping(self) -> bool:
        try:
            pymysql.connect(
                host="127.0.0.1",
                port=self.port,
                user=USER,
                password=self.password,
                database=DATABASE,
                connect_timeout=2,
            ).close()
        except pymysql.MySQLError:
            return False
        return True
