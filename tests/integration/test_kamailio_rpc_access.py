"""Who may call Kamailio's JSON-RPC (/RPC on the xhttp socket): both roles, real Kamailio.

With API_TOKEN in its environment Kamailio serves /RPC only to `Authorization: Bearer <token>`
(401 without the header, 403 with another value); without API_TOKEN only to sources in
127.0.0.0/8. /health and /metrics stay open either way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import api_token
from testbed.config import TestbedSettings
from testbed.local import processes
from testbed_db.engine import make_engine
from testbed_db.schema import create_schema

pytestmark = pytest.mark.integration

ROLES = ("sip-loadb", "sip-proxy")
ADDRESS = "127.0.77.1"  # a /24 no other test uses
VERSION = {"jsonrpc": "2.0", "method": "core.version", "id": 1}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('kamailio-rpc') / 'testbed.sqlite'}"
    create_schema(make_engine(url))
    return url


@contextmanager
def kamailio(
    role: str, database: str, workdir: Path, token: str | None, http_host: str = ADDRESS
) -> Iterator[str]:
    """A Kamailio of `role` until the block ends; yields its base URL."""
    env = {
        **os.environ,
        "SIP_ADDRESS": ADDRESS,
        "SIP_PORT": "5960",
        "DMQ_PORT": "5961",
        "HTTP_LISTEN": f"tcp:{http_host}:8977",
        "DATABASE_URL": database,
        "KAMAILIO_CHILDREN": "1",
        "KAMAILIO_RUN_DIR": str(workdir / "run"),
    }
    env.pop("API_TOKEN", None)
    if token is not None:
        env["API_TOKEN"] = token
    entrypoint = TestbedSettings().kamailio_config_dir / "entrypoint.sh"
    log = workdir / f"{role}.log"
    handle = processes.spawn([str(entrypoint), role], env, log)
    base = f"http://{http_host}:8977"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert handle.alive(), f"{role} exited:\n{processes.tail(log)}"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{role} not healthy:\n{processes.tail(log)}"
            time.sleep(0.1)
        yield base
    finally:
        processes.stop(handle)


def rpc(base: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{base}/RPC", json=VERSION, headers=headers, timeout=5)


def assert_open_reads(base: str) -> None:
    assert httpx.get(f"{base}/health", timeout=5).status_code == 200
    assert httpx.get(f"{base}/metrics", timeout=5).status_code == 200


@pytest.mark.parametrize("role", ROLES)
def test_with_a_token_only_the_bearer_header_opens_rpc(
    role: str, database: str, tmp_path: Path
) -> None:
    token = api_token.generate()
    with kamailio(role, database, tmp_path, token) as base:
        missing = rpc(base)
        assert missing.status_code == 401, missing.text
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert "result" not in missing.text

        for wrong in (
            api_token.bearer(api_token.generate()),
            {"Authorization": f"Bearer {token}x"},  # a prefix of the header is not enough
            {"Authorization": token},  # the value without the scheme
            {"Authorization": f"Basic {token}"},
        ):
            refused = rpc(base, wrong)
            assert refused.status_code == 403, (wrong, refused.text)
            assert token not in refused.text

        # two headers, one of them right: ambiguous, refused
        doubled = httpx.post(
            f"{base}/RPC",
            json=VERSION,
            headers=[
                ("Authorization", "Bearer other-token-0123456789"),
                *api_token.bearer(token).items(),
            ],
            timeout=5,
        )
        assert doubled.status_code == 403, doubled.text

        answered = rpc(base, api_token.bearer(token))
        assert answered.status_code == 200, answered.text
        assert answered.json()["result"].startswith("kamailio")
        assert_open_reads(base)


@pytest.mark.parametrize("role", ROLES)
def test_without_a_token_rpc_answers_loopback_only(
    role: str, database: str, tmp_path: Path
) -> None:
    with kamailio(role, database, tmp_path, None) as base:
        answered = rpc(base)  # from 127.0.0.1
        assert answered.status_code == 200, answered.text
        assert answered.json()["result"].startswith("kamailio")
    # a source outside 127.0.0.0/8: ::1 is the only one a test may use on this machine
    with kamailio(role, database, tmp_path, "", http_host="[::1]") as base:
        refused = rpc(base, api_token.bearer(api_token.generate()))
        assert refused.status_code == 403, refused.text
        assert "127.0.0.0/8" in refused.text
        assert_open_reads(base)
