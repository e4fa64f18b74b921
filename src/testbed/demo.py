"""`testbed demo`: bring the SIP system up and push SIPp calls through it.

A smoke run a newcomer can watch: callees 0100.. register (contacts at a SIPp UAS), callers
00xx call them at a steady rate through the load balancer, and each proxy's share is shown.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kamailio_rpc import KamailioRpc, RpcError, RpcTransportError
from testbed.local import processes
from testbed.local.testbed import PROXY_KIND, LocalTestbed
from testbed.sipp import SippResult, SippRunner, percentile

SIPP_ADDRESS = "127.0.0.1"
UAS_PORT, REGISTER_PORT, UAC_PORT = 5090, 5091, 5092


@dataclass(frozen=True)
class DemoReport:
    registered: int
    calls: SippResult
    invites_per_proxy: dict[str, int]

    def lines(self) -> list[str]:
        auth_invite = self.calls.rtt_ms.get(2, [])
        first_invite = self.calls.rtt_ms.get(1, [])
        return [
            f"registered callees: {self.registered}",
            f"calls attempted: {self.calls.attempted}  succeeded: {self.calls.successful}  "
            f"failed: {self.calls.failed}  retransmissions: {self.calls.retransmissions}",
            f"INVITE -> 407 ms: p50={percentile(first_invite, 50):.0f} "
            f"p99={percentile(first_invite, 99):.0f}  (SIPp resolution about 4 ms)",
            f"authenticated INVITE -> 200 ms: p50={percentile(auth_invite, 50):.0f} "
            f"p99={percentile(auth_invite, 99):.0f}",
            "INVITEs received per proxy: "
            + ", ".join(f"{name}={count}" for name, count in self.invites_per_proxy.items()),
        ]


def _invites_by_proxy(testbed: LocalTestbed) -> dict[str, int]:
    state = testbed.load_state()
    counts: dict[str, int] = {}
    if state is None:
        return counts
    for proxy in state.of_kind(PROXY_KIND):
        rpc = KamailioRpc(f"http://{proxy.endpoints['http']}/RPC", token=state.api_token)
        try:
            counts[proxy.name] = rpc.statistics("core:").get("core:rcv_requests_invite", 0)
        except (RpcError, RpcTransportError):
            counts[proxy.name] = -1
    return counts


def run_demo(
    testbed: LocalTestbed,
    rate: float,
    calls: int,
    callees: int,
    notify: Callable[[str], None],
    workdir: Path | None = None,
) -> DemoReport:
    """Register `callees` users and place `calls` calls at `rate` calls/s (testbed already up)."""
    lb = f"{testbed.settings.lb_address}:{testbed.settings.lb_sip_port}"
    workdir = workdir or Path(tempfile.mkdtemp(prefix="testbed-demo-"))
    sipp = SippRunner(workdir, domain=testbed.settings.sip_domain)
    uas = sipp.start_uas(SIPP_ADDRESS, UAS_PORT)
    try:
        users = [f"01{n:02d}" for n in range(callees)]
        notify(f"registering {len(users)} callees through {lb}")
        registered = sipp.register(
            users, f"{SIPP_ADDRESS}:{UAS_PORT}", lb, f"{SIPP_ADDRESS}:{REGISTER_PORT}"
        )
        pairs = [(f"00{n:02d}", f"01{n:02d}") for n in range(callees)]
        notify(f"placing {calls} calls at {rate:g} calls/s through {lb}")
        result = sipp.calls(pairs, lb, f"{SIPP_ADDRESS}:{UAC_PORT}", rate=rate, count=calls)
        return DemoReport(registered.successful, result, _invites_by_proxy(testbed))
    finally:
        processes.stop(uas)
