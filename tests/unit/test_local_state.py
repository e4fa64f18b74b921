"""The local testbed's state file and proxy registry hold the API token and what the
sip-controller trusts: only their owner may read them."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import api_token
from testbed.config import TestbedSettings
from testbed.local.components import KINDS
from testbed.local.state import Component, StateStore, TestbedState
from testbed.local.testbed import LocalTestbed


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _state() -> TestbedState:
    return TestbedState(
        database_url="sqlite:////x", database_kind="sqlite", api_token=api_token.generate()
    )


def test_state_file_and_registry_are_private_whatever_the_umask(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)  # an existing, world-readable directory
    store = StateStore(directory)
    old = os.umask(0)
    try:
        store.save(_state())
        store.save_registry({"sip-proxy-0": {"sip_address": "127.0.1.1:5060"}})
    finally:
        os.umask(old)
    assert _mode(directory) == 0o700
    assert _mode(store.path) == 0o600
    assert _mode(store.registry_path) == 0o600
    assert json.loads(store.registry_path.read_text()) == {
        "proxies": {"sip-proxy-0": {"sip_address": "127.0.1.1:5060"}}
    }
    assert {p.name for p in directory.iterdir()} == {"state.json", "proxies.json"}  # no tmp
    store.clear()
    assert not store.path.exists()
    assert not store.registry_path.exists()


def test_a_leftover_readable_tmp_file_does_not_make_the_state_readable(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(_state())
    # a crashed save of the same process and thread left its temporary file, world-readable
    tmp = tmp_path / f".state.json.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text("{}")
    tmp.chmod(0o644)
    store.save(_state())
    assert _mode(store.path) == 0o600
    assert not tmp.exists()


def test_the_token_stays_out_of_repr_and_round_trips(tmp_path: Path) -> None:
    state = _state()
    assert state.api_token is not None
    assert state.api_token not in repr(state)
    store = StateStore(tmp_path)
    store.save(state)
    loaded = store.load()
    assert loaded is not None
    assert loaded.api_token == state.api_token
    # a state file of an earlier version, without a token, still loads
    store.path.write_text(json.dumps({"database_url": "sqlite:////x", "database_kind": "sqlite"}))
    old = store.load()
    assert old is not None
    assert old.api_token is None


def test_processes_get_the_testbeds_token_not_the_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "the-callers-own-token-0123")
    testbed = LocalTestbed(TestbedSettings(testbed_state_dir=tmp_path))
    try:
        state = _state()

        def token(kind: str) -> str | None:
            return KINDS[kind].environment(testbed._launch(state)).get("API_TOKEN")

        assert token("sip-controller") == token("sip-proxy") == state.api_token
        assert token("analyzer") is None  # GET routes only, and raw packet capture
        state.api_token = None  # a state file of an earlier version
        assert token("sip-controller") is None
        assert token("sip-loadb") is None
        state.api_token = api_token.generate()
        state.put(
            Component(
                name="sip-proxy-0",
                kind="sip-proxy",
                index=0,
                endpoints={"sip": "udp:127.0.1.1:5060", "http": "127.0.1.1:8080"},
            )
        )
        testbed._write_registry(state)
        # the very addresses the enable hook sends
        assert json.loads(testbed.store.registry_path.read_text()) == {
            "proxies": {
                "sip-proxy-0": {"sip_address": "127.0.1.1:5060", "http_address": "127.0.1.1:8080"}
            }
        }
    finally:
        testbed.close()


def test_the_local_mariadb_gets_a_password_of_its_own(tmp_path: Path) -> None:
    """The server listens on 127.0.0.1: a well-known password would let any local user
    rewrite the dispatcher table. Each testbed draws one; it lives in the private state."""
    testbed = LocalTestbed(TestbedSettings(testbed_state_dir=tmp_path, database_url=None))
    try:
        first, second = (testbed._new_state("mariadb", None) for _ in range(2))
    finally:
        testbed.close()
    passwords = {urlsplit(s.database_url).password for s in (first, second)}
    assert len(passwords) == 2
    assert all(p and len(p) >= 24 and p != "testbed" for p in passwords)
    assert testbed._state_mariadb(first).url == first.database_url
