import pytest

from testbed_db import make_engine


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("mysql://root@localhost/kamailio", "mysql+pymysql"),
        ("mariadb://u@db/k", "mariadb+pymysql"),
        ("mysql+pymysql://kam:p%40ss@127.0.0.1:3307/kamailio", "mysql+pymysql"),
    ],
)
def test_mysql_and_mariadb_go_through_pymysql(url, driver):
    engine = make_engine(url)
    assert engine.url.drivername == driver
    assert engine.url.password in (None, "p@ss")


def test_sqlite_gets_wal(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 't.sqlite'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_unsupported_backend_is_named():
    with pytest.raises(ValueError, match="postgresql"):
        make_engine("postgresql://u@h/db")
