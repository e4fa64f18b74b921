"""Fixtures for the cross-service integration tests: a real local testbed per database.

The SIP system comes up once per database (SQLite, then a private MariaDB server) and the
tests share it; a test that changes the number of proxies puts it back.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from collections.abc import Iterator

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


@pytest.fixture(autouse=True)
def _usable_child_watcher() -> None:
    """pyshark (the analyzer's slow backend) installs a SafeChildWatcher bound to its own event
    loop and leaves it behind; once that loop is closed no later asyncio subprocess can start
    (Playwright's driver is one). Give each test the default watcher back (Python < 3.12)."""
    if sys.version_info >= (3, 12):
        return
    policy = asyncio.get_event_loop_policy()
    watcher = getattr(policy, "_watcher", None)
    if watcher is not None and not isinstance(watcher, asyncio.ThreadedChildWatcher):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(asyncio.ThreadedChildWatcher())
