"""Helpers shared by the integration tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from kamailio_rpc import KamailioRpc
from testbed.local import processes
from testbed.local.testbed import PROXY_KIND, LocalTestbed
from testbed.sipp import SippRunner

UAS = ("127.0.0.1", 5090)
# callees 0100..0149 registered at the SIPp UAS for the whole session
CALLEES = [f"01{n:02d}" for n in range(50)]
CALLERS = [f"00{n:02d}" for n in range(50)]


@dataclass
class SipSystem:
    testbed: LocalTestbed
    db: str
    sipp: SippRunner
    http: httpx.Client

    @property
    def lb(self) -> str:
        s = self.testbed.settings
        return f"{s.lb_address}:{s.lb_sip_port}"

    @property
    def controller(self) -> str:
        return self.testbed.settings.controller_url

    def proxies(self) -> list[str]:
        state = self.testbed.load_state()
        assert state is not None
        return [p.name for p in state.of_kind(PROXY_KIND)]

    def proxy_sip(self, index: int) -> str:
        s = self.testbed.settings
        return f"{s.proxy_address(index)}:{s.proxy_sip_port}"

    def proxy_rpc(self, index: int) -> KamailioRpc:
        s = self.testbed.settings
        return KamailioRpc(f"http://{s.proxy_address(index)}:{s.proxy_http_port}/RPC")

    def lb_rpc(self) -> KamailioRpc:
        return KamailioRpc(self.testbed.settings.lb_rpc_url)

    def invites_received(self, index: int) -> int:
        return self.proxy_rpc(index).statistics("core:").get("core:rcv_requests_invite", 0)

    def pairs(self, n: int) -> list[tuple[str, str]]:
        return [(CALLERS[i % len(CALLERS)], CALLEES[i % len(CALLEES)]) for i in range(n)]


class RawSip:
    """A bare UDP socket for byte-level checks SIPp cannot express (one request, one answer)."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.sock.settimeout(3.0)
        self.address, self.port = self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def request(
        self,
        method: str,
        ruri: str,
        user: str,
        call_id: str,
        cseq: int,
        extra: str = "",
        max_forwards: int = 70,
        domain: str = "testbed.local",
    ) -> bytes:
        return (
            f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.address}:{self.port};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"From: <sip:{user}@{domain}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:{user}@{domain}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{user}@{self.address}:{self.port}>\r\n"
            f"Max-Forwards: {max_forwards}\r\n"
            f"{extra}"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    def exchange(self, data: bytes, dest: str) -> str:
        host, _, port = dest.rpartition(":")
        self.sock.sendto(data, (host, int(port)))
        while True:
            answer = self.sock.recv(65535).decode(errors="replace")
            status = answer.split(" ", 2)[1]
            if not status.startswith("1"):  # skip provisional answers
                return answer

    @staticmethod
    def status(answer: str) -> int:
        return int(answer.split(" ", 2)[1])

    @staticmethod
    def digest_authorization(
        challenge: str,
        user: str,
        password: str,
        method: str,
        uri: str,
        header: str = "Authorization",
    ) -> str:
        line = next(
            h
            for h in challenge.split("\r\n")
            if h.lower().startswith(("www-authenticate:", "proxy-authenticate:"))
        )
        params = dict(re.findall(r'(\w+)="?([^",]+)"?', line.split(":", 1)[1]))

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{user}:{params['realm']}:{password}")
        ha2 = md5(f"{method}:{uri}")
        nc, cnonce = "00000001", uuid.uuid4().hex[:16]
        response = md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        return (
            f'{header}: Digest username="{user}", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", algorithm=MD5, '
            f'qop=auth, nc={nc}, cnonce="{cnonce}"\r\n'
        )


@dataclass
class ClientProcess:
    """A sip-client pod running as its own process (python -m sip_client)."""

    handle: processes.ProcessHandle
    url: str
    sip: tuple[str, int]
    log: Path

    def calls(self, http: httpx.Client) -> list[dict[str, object]]:
        items: list[dict[str, object]] = http.get(
            f"{self.url}/calls", params={"limit": 100000}
        ).json()["items"]
        return items


def start_sip_client(
    workdir: Path,
    pod: str,
    phones: int,
    sip: tuple[str, int],
    http_port: int,
    outbound: str,
    **env: str,
) -> ClientProcess:
    log = workdir / f"sip-client-{pod}.log"
    environment = {
        **os.environ,
        "POD_ID": pod,
        "PHONES": str(phones),
        "SIP_CLIENT_ADDRESS": sip[0],
        "SIP_CLIENT_PORT": str(sip[1]),
        "SIP_CLIENT_HTTP_HOST": "127.0.0.1",
        "SIP_CLIENT_HTTP_PORT": str(http_port),
        "OUTBOUND_PROXY": outbound,
        **env,
    }
    if "SCENARIO_CONTROLLER_URL" not in env:
        environment.pop("SCENARIO_CONTROLLER_URL", None)
    handle = processes.spawn([sys.executable, "-m", "sip_client"], environment, log)
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not handle.alive():
            raise RuntimeError(f"sip-client {pod} exited:\n{processes.tail(log)}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return ClientProcess(handle, url, sip, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    processes.stop(handle)
    raise RuntimeError(f"sip-client {pod} not healthy:\n{processes.tail(log)}")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.1)


def own_addresses(block: int) -> dict[str, str]:
    """TestbedSettings fields that give a test's testbed addresses of its own: 127.0.<block>.1
    for the load balancer and controllers, the next two /24s for proxies and client pods, so
    it never meets the testbed of another test that is up at the same time."""
    host = f"127.0.{block}.1"
    return {
        "lb_address": host,
        "sip_controller_host": host,
        "scenario_controller_host": host,
        "autoscaler_metrics_host": host,
        "proxy_address_base": f"127.0.{block + 1}.1",
        "client_address_base": f"127.0.{block + 2}.1",
    }


def own_addresses_env(block: int, state_dir: Path) -> dict[str, str]:
    """The same as the environment of a `testbed` command (without DATABASE_URL: SQLite)."""
    env = {
        **os.environ,
        "TESTBED_STATE_DIR": str(state_dir),
        "COLUMNS": "200",
        **{name.upper(): value for name, value in own_addresses(block).items()},
    }
    env.pop("DATABASE_URL", None)
    return env
