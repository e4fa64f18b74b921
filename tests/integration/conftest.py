"""Fixtures for the cross-service integration tests: a real local testbed per database.

The SIP system comes up once per database (SQLite, then a private MariaDB server) and the
tests share it; a test that changes the number of proxies puts it back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import CALLEES, UAS, RawSip, SipSystem

from testbed.config import TestbedSettings
from testbed.local import processes
from testbed.local.testbed import LocalTestbed
from testbed.sipp import SippRunner


@pytest.fixture(scope="session", params=["sqlite", "mariadb"])
def sip_system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SipSystem]:
    db = request.param
    state_dir = tmp_path_factory.mktemp(f"testbed-{db}")
    # explicit values win over the developer's environment
    settings = TestbedSettings(testbed_state_dir=state_dir, database_url=None)
    testbed = LocalTestbed(settings)
    testbed.up(2, None, db)
    sipp = SippRunner(state_dir / "sipp")
    uas = sipp.start_uas(*UAS)
    http = httpx.Client(timeout=60.0)
    try:
        registered = sipp.register(
            CALLEES,
            f"{UAS[0]}:{UAS[1]}",
            f"{settings.lb_address}:{settings.lb_sip_port}",
            "127.0.0.1:5091",
            tag="callees",
        )
        assert registered.successful == len(CALLEES), registered.errors
        yield SipSystem(testbed, db, sipp, http)
    finally:
        processes.stop(uas)
        http.close()
        testbed.down()
        testbed.close()


@pytest.fixture
def raw_sip() -> Iterator[RawSip]:
    client = RawSip()
    yield client
    client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ needs the real parts (`-m "not integration"`)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)
