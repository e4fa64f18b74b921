"""Benchmark: how many calls/s one Kamailio proxy serves within the QoS target at a CPU limit.

The paper's section 4.1 by hand: SIPp places authenticated calls (INVITE, 407, ACK, INVITE,
200, ACK, BYE) through the load balancer at rising constant rates; one proxy runs in a CPU
cgroup (30m by default). Per rate it prints the response time of the first INVITE (-> 407)
and of the authenticated INVITE (-> 200, through the proxy to the callee and back), the
failed calls and the proxy's CPU. The baseline, measured in the same run, is the same chain
with the proxy unlimited. The last line holds the headline figures as key=value pairs.

    uv run python benchmarks/proxy_capacity.py [--cpu 30m] [--rates 10,20,...] [--step-seconds 20]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.config import TestbedSettings
from testbed.local import cgroups, processes
from testbed.local.testbed import PROXY_KIND, LocalTestbed
from testbed.sipp import SippRunner, percentile

QOS_MS = 1000.0
UAS = ("127.0.0.1", 5090)
CALLEES = [f"01{n:02d}" for n in range(100)]
PAIRS = [(f"00{n:02d}", f"01{n:02d}") for n in range(100)]


@dataclass
class Step:
    rate: float
    attempted: int
    failed: int
    retransmissions: int
    challenge_p50: float
    challenge_p99: float
    invite_p50: float
    invite_p99: float
    invite_max: float
    achieved_cps: float
    cpu_millicores: float

    @property
    def within_qos(self) -> bool:
        return self.failed == 0 and self.invite_p99 < QOS_MS

    def row(self) -> str:
        verdict = "ok" if self.within_qos else "VIOLATES"
        return (
            f"{self.rate:>8g} {self.achieved_cps:>9.1f} {self.attempted:>7} {self.failed:>6} "
            f"{self.retransmissions:>7} {self.challenge_p50:>7.0f} {self.challenge_p99:>7.0f} "
            f"{self.invite_p50:>7.0f} {self.invite_p99:>7.0f} {self.invite_max:>7.0f} "
            f"{self.cpu_millicores:>8.1f}  {verdict}"
        )


HEADER = (
    f"{'rate/s':>8} {'achieved':>9} {'calls':>7} {'failed':>6} {'retrans':>7} "
    f"{'407p50':>7} {'407p99':>7} {'200p50':>7} {'200p99':>7} {'200max':>7} {'proxy_mCPU':>8}"
)


def _proxy_cpu_seconds(testbed: LocalTestbed) -> float | None:
    state = testbed.load_state()
    proxy = state.of_kind(PROXY_KIND)[0] if state else None
    if proxy is None or proxy.cgroup is None:
        return None
    record = proxy.cgroup
    group = cgroups.group_from_paths(
        proxy.name, record.millicores, record.paths, record.usage_file, record.usage_unit_ns
    )
    return group.usage_seconds()


def run_steps(
    testbed: LocalTestbed, sipp: SippRunner, rates: list[float], seconds: float, label: str
) -> list[Step]:
    lb = f"{testbed.settings.lb_address}:{testbed.settings.lb_sip_port}"
    steps: list[Step] = []
    bad_in_a_row = 0
    for rate in rates:
        count = max(1, round(rate * seconds))
        cpu_before = _proxy_cpu_seconds(testbed)
        started = time.monotonic()
        result = sipp.calls(
            PAIRS,
            lb,
            "127.0.0.1:5092",
            rate=rate,
            count=count,
            timeout=seconds * 4 + 60,
            tag=f"{label}-{rate:g}",
        )
        elapsed = time.monotonic() - started
        cpu_after = _proxy_cpu_seconds(testbed)
        cpu = (
            (cpu_after - cpu_before) / elapsed * 1000
            if cpu_before is not None and cpu_after is not None
            else math.nan
        )
        first, second = result.rtt_ms.get(1, []), result.rtt_ms.get(2, [])
        step = Step(
            rate=rate,
            attempted=result.attempted,
            failed=result.failed + max(0, count - result.attempted),
            retransmissions=result.retransmissions,
            challenge_p50=percentile(first, 50),
            challenge_p99=percentile(first, 99),
            invite_p50=percentile(second, 50),
            invite_p99=percentile(second, 99),
            invite_max=max(second) if second else math.nan,
            achieved_cps=result.successful / elapsed,
            cpu_millicores=cpu,
        )
        steps.append(step)
        print(step.row(), flush=True)
        bad_in_a_row = 0 if step.within_qos else bad_in_a_row + 1
        if bad_in_a_row >= 2:
            break
        time.sleep(3)  # let queues drain before the next rate
    return steps


def bring_up(
    state_dir: Path, millicores: int | None
) -> tuple[LocalTestbed, SippRunner, processes.ProcessHandle]:
    testbed = LocalTestbed(TestbedSettings(testbed_state_dir=state_dir, database_url=None))
    testbed.up(1, millicores, "sqlite")
    sipp = SippRunner(state_dir / "sipp", domain=testbed.settings.sip_domain)
    uas = sipp.start_uas(*UAS)
    lb = f"{testbed.settings.lb_address}:{testbed.settings.lb_sip_port}"
    registered = sipp.register(CALLEES, f"{UAS[0]}:{UAS[1]}", lb, "127.0.0.1:5091")
    if registered.successful != len(CALLEES):
        raise SystemExit(f"only {registered.successful} of {len(CALLEES)} callees registered")
    return testbed, sipp, uas


def measure(
    state_dir: Path, millicores: int | None, rates: list[float], seconds: float, label: str
) -> list[Step]:
    testbed, sipp, uas = bring_up(state_dir, millicores)
    try:
        print(HEADER, flush=True)
        return run_steps(testbed, sipp, rates, seconds, label)
    finally:
        processes.stop(uas)
        testbed.down()
        testbed.close()


def largest_within_qos(steps: list[Step]) -> float:
    best = 0.0
    for step in steps:
        if not step.within_qos:
            break
        best = step.rate
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu", default="30m", help="CPU limit of the proxy (Kubernetes quantity)")
    parser.add_argument("--rates", default="10,20,30,40,50,60,70,80,90,100")
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--chain-rates", default="250,500,750,1000,1250,1500,1750,2000,2500,3000")
    parser.add_argument("--chain-step-seconds", type=float, default=10.0)
    args = parser.parse_args()
    millicores = cgroups.parse_millicores(args.cpu)
    rates = [float(r) for r in args.rates.split(",")]
    chain_rates = [float(r) for r in args.chain_rates.split(",")]
    if cgroups.detect() is None:
        raise SystemExit(
            "no writable cgroup CPU controller: the limited proxy cannot be measured here"
        )

    with tempfile.TemporaryDirectory(prefix="proxy-capacity-") as tmp:
        print(
            f"# one proxy limited to {millicores}m CPU behind the LB, "
            f"{args.step_seconds:g} s per rate, QoS: p99 of the authenticated INVITE "
            f"< {QOS_MS:.0f} ms and no failed call"
        )
        limited = measure(Path(tmp) / "limited", millicores, rates, args.step_seconds, "limited")
        print(
            "# baseline: the same chain with the proxy unlimited, "
            f"{args.chain_step_seconds:g} s per rate"
        )
        chain = measure(Path(tmp) / "chain", None, chain_rates, args.chain_step_seconds, "chain")

    capacity = largest_within_qos(limited)
    chain_cps = largest_within_qos(chain)
    ok_steps = [
        s
        for s in limited
        if s.within_qos and s.achieved_cps > 0 and not math.isnan(s.cpu_millicores)
    ]
    cpu_ms_per_call = (
        sum(s.cpu_millicores / s.achieved_cps for s in ok_steps) / len(ok_steps)
        if ok_steps
        else math.nan
    )
    ratio = capacity / chain_cps if chain_cps else math.nan
    print(
        f"# largest rate within QoS at {millicores}m: {capacity:g} calls/s; "
        f"unlimited chain: {chain_cps:g} calls/s; limited/unlimited = {ratio:.3f}; "
        f"proxy CPU per call {cpu_ms_per_call:.2f} ms"
    )
    print(
        f"capacity_{millicores}m_calls_per_s={capacity:g} chain_calls_per_s={chain_cps:g} "
        f"ratio_limited_to_chain={ratio:.3f} proxy_cpu_ms_per_call={cpu_ms_per_call:.2f}"
    )


if __name__ == "__main__":
    main()
