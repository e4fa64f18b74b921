"""Benchmark: the steady call rate one sip-client pod pair sustains, next to SIPp.

A caller pod (00) and a callee pod (01), 100 phones each, call through the local load balancer
and one unlimited proxy. The benchmark plays the scenario controller: a WebSocket server that
sends the caller pod `invite` commands on an absolute timeline (rate R for a few seconds per
step) and counts the call records that come back. A rate passes when over 99.9% of its calls
succeed. The baseline, in the same run: SIPp (UAC and UAS) through the same chain at the same
rates. CPU seconds per call come from /proc for the pods and for SIPp.

    uv run python benchmarks/client_throughput.py [--rates 200,400,...] [--step-seconds 8]

The last line: calls_per_s, sipp_calls_per_s, ratio (ours/SIPp, highest passing rates) and
cpu_ms_per_call, sipp_cpu_ms_per_call (CPU per call at those rates: both pods; UAC + UAS).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
from call_steps import HEADER, PASS_RATIO, Step, cpu_seconds, step_from_records

import api_token
from testbed.config import TestbedSettings
from testbed.local import processes
from testbed.local.testbed import LocalTestbed
from testbed.sipp import SippRunner
from testbed_messages import CallRecordMessage, Hello, Invite, Welcome, decode_client, encode

DRIVER = ("127.0.0.1", 8199)
CALLER = ("127.0.2.1", 5060, 8101)
CALLEE = ("127.0.2.2", 5060, 8102)
# the benchmark starts its own pods: API_TOKEN if set, else a fresh one for this run; the pods
# need it for POST /register and present it in the handshake to the benchmark's driver
TOKEN = os.environ.get(api_token.ENV_NAME) or api_token.generate()


def start_pod(
    workdir: Path, pod: str, where: tuple[str, int, int], lb: str, **env: str
) -> processes.ProcessHandle:
    environment = {
        **os.environ,
        "POD_ID": pod,
        "PHONES": "100",
        "SIP_CLIENT_ADDRESS": where[0],
        "SIP_CLIENT_PORT": str(where[1]),
        "SIP_CLIENT_HTTP_PORT": str(where[2]),
        "OUTBOUND_PROXY": lb,
        "LOG_LEVEL": "warning",
        api_token.ENV_NAME: TOKEN,
        **env,
    }
    handle = processes.spawn(
        [sys.executable, "-m", "sip_client"], environment, workdir / f"pod-{pod}.log"
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{where[2]}/health", timeout=1).status_code == 200:
                return handle
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"pod {pod} did not start:\n{processes.tail(workdir / f'pod-{pod}.log')}")


class Driver:
    """The scenario controller's part: invites on an absolute timeline, records back."""

    def __init__(self) -> None:
        self.ws: websockets.ServerConnection | None = None
        self.connected = asyncio.Event()
        self.records: dict[str, CallRecordMessage] = {}

    async def handler(self, ws: websockets.ServerConnection) -> None:
        hello = decode_client(await ws.recv())
        assert isinstance(hello, Hello)
        await ws.send(encode(Welcome(pod=hello.pod)))
        self.ws = ws
        self.connected.set()
        async for raw in ws:
            message = decode_client(raw)
            if isinstance(message, CallRecordMessage):
                self.records[message.call_id] = message

    async def step(self, rate: float, seconds: float, tag: str) -> tuple[int, float]:
        assert self.ws is not None
        count = round(rate * seconds)
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            n = i % 100
            await self.ws.send(
                encode(Invite(caller=f"00{n:02d}", callee=f"01{n:02d}", call_id=f"{tag}-{i}@bench"))
            )
        wait_until = loop.time() + 40
        while loop.time() < wait_until:
            if sum(1 for k in self.records if k.startswith(f"{tag}-")) >= count:
                break
            await asyncio.sleep(0.1)
        return count, loop.time() - start


async def run_ours(
    rates: list[float], seconds: float, pods: list[processes.ProcessHandle], workdir: Path, lb: str
) -> list[Step]:
    driver = Driver()
    steps: list[Step] = []
    async with websockets.serve(driver.handler, *DRIVER, max_size=None, compression=None):
        caller = start_pod(
            workdir, "00", CALLER, lb, SCENARIO_CONTROLLER_URL=f"ws://{DRIVER[0]}:{DRIVER[1]}/ws"
        )
        pods.append(caller)
        await asyncio.wait_for(driver.connected.wait(), 20)
        print(HEADER, flush=True)
        failing = 0
        for rate in rates:
            tag = f"r{rate:g}"
            cpu_before = sum(cpu_seconds(p.pid) for p in pods)
            sent, _elapsed = await driver.step(rate, seconds, tag)
            cpu = sum(cpu_seconds(p.pid) for p in pods) - cpu_before
            records = [r for k, r in driver.records.items() if k.startswith(f"{tag}-")]
            step = step_from_records(rate, sent, records, cpu)
            steps.append(step)
            print(step.row(), flush=True)
            failing = 0 if step.ok else failing + 1
            if failing >= 2:
                break
            await asyncio.sleep(2)
    return steps


def run_sipp(rates: list[float], seconds: float, workdir: Path, lb: str) -> list[Step]:
    sipp = SippRunner(workdir / "sipp")
    uas = sipp.start_uas("127.0.0.1", 5090)
    steps: list[Step] = []
    try:
        reg = sipp.register(
            [f"02{n:02d}" for n in range(100)], "127.0.0.1:5090", lb, "127.0.0.1:5091"
        )
        if reg.successful != 100:
            raise SystemExit("SIPp callees did not register")
        pairs = [(f"00{n:02d}", f"02{n:02d}") for n in range(100)]
        print(HEADER, flush=True)
        failing = 0
        for rate in rates:
            count = round(rate * seconds)
            uas_before = cpu_seconds(uas.pid)
            started = time.monotonic()
            result = sipp.calls(
                pairs, lb, "127.0.0.1:5092", rate=rate, count=count, tag=f"sipp-{rate:g}"
            )
            elapsed = time.monotonic() - started
            cpu = result.cpu_seconds + cpu_seconds(uas.pid) - uas_before
            step = Step(
                rate,
                count,
                result.successful,
                result.successful / elapsed,
                1000 * cpu / count,
            )
            steps.append(step)
            print(step.row(), flush=True)
            failing = 0 if step.ok else failing + 1
            if failing >= 2:
                break
            time.sleep(2)
    finally:
        processes.stop(uas)
    return steps


def best(steps: list[Step]) -> Step | None:
    passing = [s for s in steps if s.ok]
    return max(passing, key=lambda s: s.rate) if passing else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # past 1000 calls/s: a ratio above 1.0 must be measurable when both tools get that far
    parser.add_argument("--rates", default="200,400,600,800,1000,1200,1500,1800")
    parser.add_argument("--step-seconds", type=float, default=8.0)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="client-throughput-") as tmp:
        workdir = Path(tmp)
        testbed = LocalTestbed(
            TestbedSettings(testbed_state_dir=workdir / "state", database_url=None)
        )
        testbed.up(1, None, "sqlite")
        lb = f"{testbed.settings.lb_address}:{testbed.settings.lb_sip_port}"
        pods: list[processes.ProcessHandle] = []
        try:
            callee = start_pod(workdir, "01", CALLEE, lb)
            pods.append(callee)
            httpx.post(
                f"http://127.0.0.1:{CALLEE[2]}/register", headers=api_token.bearer(TOKEN)
            ).raise_for_status()
            deadline = time.monotonic() + 30
            while httpx.get(f"http://127.0.0.1:{CALLEE[2]}/health").json()["registered"] < 100:
                if time.monotonic() > deadline:
                    raise SystemExit("the callee pod did not register its 100 phones")
                time.sleep(0.2)
            print(
                f"# sip-client pods 00 -> 01 (100 phones each) through LB + 1 unlimited proxy, "
                f"{args.step_seconds:g} s per rate, "
                f"pass: > {100 * PASS_RATIO:.1f}% of calls succeed"
            )
            ours = asyncio.run(run_ours(rates, args.step_seconds, pods, workdir, lb))
            for pod in pods:
                processes.stop(pod)
            print("# baseline: SIPp UAC -> the same chain -> SIPp UAS")
            theirs = run_sipp(rates, args.step_seconds, workdir, lb)
        finally:
            for pod in pods:
                processes.stop(pod)
            testbed.down()
            testbed.close()
    mine, sipps = best(ours), best(theirs)
    ours_cps = mine.rate if mine else 0.0
    sipp_cps = sipps.rate if sipps else 0.0
    ratio = ours_cps / sipp_cps if sipp_cps else float("nan")
    our_cpu = mine.cpu_ms_per_call if mine else float("nan")
    sipp_cpu = sipps.cpu_ms_per_call if sipps else float("nan")
    print(
        f"# highest passing rate: sip-client {ours_cps:g} calls/s ({our_cpu:.3f} ms CPU per call, "
        f"both pods), SIPp {sipp_cps:g} calls/s ({sipp_cpu:.3f} ms CPU per call, UAC + UAS)"
    )
    print(
        f"calls_per_s={ours_cps:g} sipp_calls_per_s={sipp_cps:g} ratio={ratio:.2f} "
        f"cpu_ms_per_call={our_cpu:.3f} sipp_cpu_ms_per_call={sipp_cpu:.3f}"
    )


if __name__ == "__main__":
    main()
