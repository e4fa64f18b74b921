import pytest

from testbed_db import kamailio_db_url, make_engine


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/testbed/testbed.sqlite", "sqlite:///var/lib/testbed/testbed.sqlite"),
        (
            "mysql+pymysql://kam:secret@127.0.0.1:3307/kamailio",
            "mysql://kam:secret@127.0.0.1:3307/kamailio",
        ),
        ("mysql://root@localhost/kamailio", "mysql://root@localhost/kamailio"),
        ("mariadb+pymysql://u@db/k", "mysql://u@db/k"),
    ],
)
def test_kamailio_url_translation(url, expected):
    assert kamailio_db_url(url) == expected


def test_relative_sqlite_path_is_refused_with_reason():
    with pytest.raises(ValueError, match="must be absolute"):
        kamailio_db_url("sqlite:///relative.sqlite")


def test_unsupported_backend_is_named():
    with pytest.raises(ValueError, match="postgresql"):
        make_engine("postgresql://u@h/db")
    with pytest.raises(ValueError, match="postgresql"):
        kamailio_db_url("postgresql://u@h/db")
