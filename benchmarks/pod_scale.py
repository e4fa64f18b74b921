"""Benchmark: how many phones one machine holds, as sip-client pods registered through the chain.

100 sip-client pods (`python -m sip_client`, 100 phones each: 10,000 phones, subscribers
0000-9999, which the sip-controller seeds by default) start at once, each on its own loopback
address (127.0.3.1, 127.0.3.2, ...: SIP on 5060, HTTP on 8090), behind the local load balancer
and one unlimited proxy. The benchmark plays the scenario controller: a WebSocket server every
pod connects to. Printed:

- start: from spawning the pods to all of them answering /health;
- registration: from the POST /register commands (all pods at once) to /health reporting every
  phone registered (goal: under 60 s), when 99% were, and the REGISTERs that failed (the pods
  report them on their link) and were retried;
- idle: the CPU the registered pods use doing nothing for 5 s (in cores);
- memory: RSS and PSS of the pods from /proc/PID/smaps_rollup, per pod and per phone;
- calls/s with all phones registered: invites on an absolute timeline, caller PPnn in pod PP,
  callee in the next pod; a rate passes when over 99.9% of its calls succeed and they complete
  at 95% of the offered rate or better (as in client_throughput.py).

Baseline in the same run, after the pods are stopped: SIPp registers the same 10,000 phones
through the same chain (at --sipp-register-rate); its time and SIPp's RSS are printed beside.

    flock /tmp/ims-testbed-itest.lock uv run python benchmarks/pod_scale.py \\
        [--pods 100] [--phones-per-pod 100] [--rates 100,200,300,400,600] [--no-sipp] \\
        [--keep-workdir]

--keep-workdir keeps the temp dir (the pods' logs, pod-PP.log, and the testbed's Kamailio logs
under state/logs) to find out why a REGISTER failed; --no-sipp skips the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import websockets
from call_steps import HEADER, KEEP_UP, PASS_RATIO, Step, cpu_seconds, step_from_records

import api_token
from testbed.config import TestbedSettings
from testbed.local import processes
from testbed.local.testbed import LocalTestbed
from testbed.sipp import SippRunner
from testbed_messages import (
    CallRecordMessage,
    Hello,
    Invite,
    RegistrationMessage,
    Welcome,
    decode_client,
    encode,
)

DRIVER = ("127.0.0.1", 8198)
SIP_PORT, HTTP_PORT = 5060, 8090
TOKEN = os.environ.get(api_token.ENV_NAME) or api_token.generate()
AUTH = api_token.bearer(TOKEN)


def address(index: int) -> str:
    """Pod `index`'s loopback address: 127.0.3.1 upwards, 250 to a /24."""
    return f"127.0.{3 + index // 250}.{1 + index % 250}"


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB of one process, (0, 0) if it is gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == "Rss":
                rss = int(rest.split()[0])
            elif name == "Pss":
                pss = int(rest.split()[0])
    except OSError:
        pass
    return rss, pss


@dataclass
class Pod:
    id: str
    host: str
    handle: processes.ProcessHandle

    @property
    def health(self) -> str:
        return f"http://{self.host}:{HTTP_PORT}/health"


def spawn_pod(workdir: Path, index: int, phones: int, lb: str, spread: float) -> Pod:
    pod, host = f"{index:02d}", address(index)
    environment = {
        **os.environ,
        "POD_ID": pod,
        "PHONES": str(phones),
        "SIP_CLIENT_ADDRESS": host,
        "SIP_CLIENT_PORT": str(SIP_PORT),
        "SIP_CLIENT_HTTP_HOST": host,
        "SIP_CLIENT_HTTP_PORT": str(HTTP_PORT),
        "OUTBOUND_PROXY": lb,
        "REGISTER_SPREAD_SECONDS": str(spread),
        "LOG_LEVEL": "warning",
        "SCENARIO_CONTROLLER_URL": f"ws://{DRIVER[0]}:{DRIVER[1]}/ws",
        api_token.ENV_NAME: TOKEN,
    }
    log = workdir / f"pod-{pod}.log"
    with processes.interrupts_held():  # a Ctrl-C now still leaves the handle to stop
        handle = processes.spawn([sys.executable, "-m", "sip_client"], environment, log)
    return Pod(pod, host, handle)


async def all_answer(
    http: httpx.AsyncClient, pods: list[Pod], until: float, want: int | None = None
) -> tuple[float, float]:
    """Poll every pod's /health until all answer (and, with `want`, hold `want` registered
    phones in total); returns when that happened and when 99% of `want` were (monotonic);
    SystemExit at `until`."""
    most = float("nan")

    async def one(pod: Pod) -> int | None:
        try:
            response = await http.get(pod.health, timeout=2)
            return int(response.json()["registered"]) if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    while True:
        answers = await asyncio.gather(*(one(p) for p in pods))
        now = time.monotonic()
        up = [a for a in answers if a is not None]
        if want is not None and most != most and sum(up) >= 0.99 * want:  # the first time
            most = now
        if len(up) == len(pods) and (want is None or sum(up) >= want):
            return now, most
        if now > until:
            raise SystemExit(
                f"after the deadline: {len(up)} of {len(pods)} pods answer, "
                f"{sum(up)} phones registered"
            )
        await asyncio.sleep(0.5)


class Driver:
    """The scenario controller's part: every pod's link, invites out, call records back."""

    def __init__(self) -> None:
        self.links: dict[str, websockets.ServerConnection] = {}
        self.records: dict[str, CallRecordMessage] = {}
        self.refusals: Counter[str] = Counter()  # failed registrations, by reason

    async def handler(self, ws: websockets.ServerConnection) -> None:
        hello = decode_client(await ws.recv())
        assert isinstance(hello, Hello)
        await ws.send(encode(Welcome(pod=hello.pod)))
        self.links[hello.pod] = ws
        async for raw in ws:
            message = decode_client(raw)
            if isinstance(message, CallRecordMessage):
                self.records[message.call_id] = message
            elif isinstance(message, RegistrationMessage) and not message.ok:
                self.refusals[message.reason or "?"] += 1

    async def step(self, rate: float, seconds: float, pods: int, phones: int, tag: str) -> int:
        count = round(rate * seconds)
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pod, phone = i % pods, (i // pods) % phones
            await self.links[f"{pod:02d}"].send(
                encode(
                    Invite(
                        caller=f"{pod:02d}{phone:02d}",
                        callee=f"{(pod + 1) % pods:02d}{phone:02d}",
                        call_id=f"{tag}-{i}@scale",
                    )
                )
            )
        wait_until = loop.time() + 40
        while loop.time() < wait_until:
            if self.count(tag) >= count:
                break
            await asyncio.sleep(0.1)
        return count

    def count(self, tag: str) -> int:
        return sum(1 for k in self.records if k.startswith(f"{tag}-"))


@dataclass
class Figures:
    start_s: float = float("nan")
    register_s: float = float("nan")
    rss_kib: int = 0
    pss_kib: int = 0
    idle_cores: float = float("nan")


async def run_pods(
    args: argparse.Namespace, workdir: Path, lb: str, pods: list[Pod], figures: Figures
) -> list[Step]:
    driver = Driver()
    steps: list[Step] = []
    phones = args.pods * args.phones_per_pod
    async with (
        websockets.serve(driver.handler, *DRIVER, max_size=None, compression=None),
        httpx.AsyncClient(headers=AUTH, limits=httpx.Limits(max_connections=200)) as http,
    ):
        started = time.monotonic()
        for index in range(args.pods):
            pods.append(spawn_pod(workdir, index, args.phones_per_pod, lb, args.register_spread))
        spawned = time.monotonic()
        ready, _ = await all_answer(http, pods, started + args.start_timeout)
        figures.start_s = ready - started
        print(
            f"# start: {args.pods} pods spawned in {spawned - started:.2f} s, all answering "
            f"/health after {figures.start_s:.2f} s",
            flush=True,
        )
        while len(driver.links) < args.pods:  # the links connect right after start-up
            if time.monotonic() > ready + 30:
                raise SystemExit(f"only {len(driver.links)} of {args.pods} pods connected")
            await asyncio.sleep(0.1)
        cpu_before = sum(cpu_seconds(p.handle.pid) for p in pods)
        asked = time.monotonic()
        answers = await asyncio.gather(
            *(http.post(f"http://{p.host}:{HTTP_PORT}/register", timeout=30) for p in pods)
        )
        for answer in answers:
            answer.raise_for_status()
        done, most = await all_answer(http, pods, asked + args.register_timeout, want=phones)
        figures.register_s = done - asked
        register_cpu = sum(cpu_seconds(p.handle.pid) for p in pods) - cpu_before
        print(
            f"# registration: {phones} phones registered {figures.register_s:.2f} s after the "
            f"register commands ({phones / figures.register_s:.0f}/s; pods' CPU "
            f"{register_cpu:.1f} s, {1000 * register_cpu / phones:.2f} ms per phone); 99% after "
            f"{most - asked:.2f} s; each pod spread its first REGISTERs over "
            f"{args.register_spread:g} s",
            flush=True,
        )
        if driver.refusals:
            reasons = ", ".join(f"{n} x {why}" for why, n in driver.refusals.most_common(5))
            print(
                f"# registration: {sum(driver.refusals.values())} REGISTERs failed and were "
                f"retried by their pods (REGISTER_RETRY_SECONDS later): {reasons}",
                flush=True,
            )
        for pod in pods:
            rss, pss = memory_kib(pod.handle.pid)
            figures.rss_kib += rss
            figures.pss_kib += pss
        print(
            f"# memory: pods' RSS {figures.rss_kib / 1024:.0f} MiB "
            f"({figures.rss_kib / 1024 / args.pods:.1f} MiB per pod, "
            f"{figures.rss_kib / phones:.0f} KiB per phone), "
            f"PSS {figures.pss_kib / 1024:.0f} MiB ({figures.pss_kib / 1024 / args.pods:.1f} MiB "
            f"per pod, {figures.pss_kib / phones:.0f} KiB per phone)",
            flush=True,
        )
        # what 100 idle pods cost the machine (timers, stats to the controller, re-registers)
        idle_before, idle_at = sum(cpu_seconds(p.handle.pid) for p in pods), time.monotonic()
        await asyncio.sleep(5)
        figures.idle_cores = (sum(cpu_seconds(p.handle.pid) for p in pods) - idle_before) / (
            time.monotonic() - idle_at
        )
        print(f"# idle: the registered pods use {figures.idle_cores:.2f} cores", flush=True)
        print(HEADER, flush=True)
        failing = 0
        for rate in args.rates:
            tag = f"r{rate:g}"
            cpu_before = sum(cpu_seconds(p.handle.pid) for p in pods)
            sent = await driver.step(rate, args.step_seconds, args.pods, args.phones_per_pod, tag)
            cpu = sum(cpu_seconds(p.handle.pid) for p in pods) - cpu_before
            records = [r for k, r in driver.records.items() if k.startswith(f"{tag}-")]
            step = step_from_records(rate, sent, records, cpu)
            steps.append(step)
            print(step.row(), flush=True)
            failing = 0 if step.ok else failing + 1
            if failing >= 2:
                break
            await asyncio.sleep(2)
    return steps


def sipp_baseline(
    workdir: Path, lb: str, phones: list[str], rate: float
) -> tuple[float, int, float]:
    """SIPp registers the same phones through the same chain: (seconds, registered, CPU s)."""
    sipp = SippRunner(workdir / "sipp")
    started = time.monotonic()
    result = sipp.register(
        phones, "127.0.0.1:5093", lb, "127.0.0.1:5094", rate=rate, timeout=300, tag="scale"
    )
    return time.monotonic() - started, result.successful, result.cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=100, choices=range(1, 101), metavar="1-100")
    parser.add_argument(
        "--phones-per-pod", type=int, default=100, choices=range(1, 101), metavar="1-100"
    )
    parser.add_argument("--rates", default="100,200,300,400,600", help="calls/s, comma-separated")
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--register-timeout", type=float, default=180.0)
    parser.add_argument("--sipp-register-rate", type=float, default=1000.0)
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the temp dir (pod logs, testbed state and Kamailio logs) and print its path",
    )
    parser.add_argument("--no-sipp", action="store_true", help="skip the SIPp baseline")
    parser.add_argument(
        "--register-spread",
        type=float,
        default=5.0,
        help="REGISTER_SPREAD_SECONDS of every pod: its phones' first REGISTERs spread over "
        "this many seconds (0: all at once, whose retransmissions then come back in waves)",
    )
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    phones = args.pods * args.phones_per_pod
    figures = Figures()
    steps: list[Step] = []
    sipp_s, sipp_ok = float("nan"), 0
    # --keep-workdir: the pods' logs are what explains a failed REGISTER after the run
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="pod-scale-"))
        if args.keep_workdir:
            print(f"# workdir {workdir} (kept)", flush=True)
        else:
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        testbed = LocalTestbed(
            TestbedSettings(testbed_state_dir=workdir / "state", database_url=None)
        )
        pods: list[Pod] = []
        try:
            testbed.up(1, None, "sqlite")
            lb = f"{testbed.settings.lb_address}:{testbed.settings.lb_sip_port}"
            print(
                f"# {args.pods} sip-client pods x {args.phones_per_pod} phones = {phones} phones "
                f"through LB + 1 unlimited proxy; calls {args.step_seconds:g} s per rate, "
                f"pass: > {100 * PASS_RATIO:.1f}% succeed at >= {100 * KEEP_UP:.0f}% of offered",
                flush=True,
            )
            steps = asyncio.run(run_pods(args, workdir, lb, pods, figures))
            for pod in pods:
                processes.stop(pod.handle)
            if not args.no_sipp:
                print(
                    f"# baseline: SIPp registers the same {phones} phones through the same chain "
                    f"at {args.sipp_register_rate:g}/s",
                    flush=True,
                )
                users = [
                    f"{pod:02d}{phone:02d}"
                    for pod in range(args.pods)
                    for phone in range(args.phones_per_pod)
                ]
                sipp_s, sipp_ok, sipp_cpu = sipp_baseline(
                    workdir, lb, users, args.sipp_register_rate
                )
                print(
                    f"# SIPp: {sipp_ok} of {phones} registered in {sipp_s:.2f} s "
                    f"(CPU {sipp_cpu:.1f} s, {1000 * sipp_cpu / phones:.2f} ms per phone)",
                    flush=True,
                )
        finally:
            for pod in pods:
                processes.stop(pod.handle)
            testbed.down()
            testbed.close()
    passing = [s for s in steps if s.ok]
    cps = max((s.rate for s in passing), default=0.0)
    print(
        f"pods={args.pods} phones={phones} start_s={figures.start_s:.1f} "
        f"register_s={figures.register_s:.1f} "
        f"rss_kib_per_phone={figures.rss_kib / phones:.0f} "
        f"pss_kib_per_phone={figures.pss_kib / phones:.0f} "
        f"rss_mib_per_pod={figures.rss_kib / 1024 / args.pods:.1f} "
        f"idle_cores={figures.idle_cores:.2f} calls_per_s={cps:g} "
        f"sipp_register_s={sipp_s:.1f} sipp_registered={sipp_ok}"
    )


if __name__ == "__main__":
    main()
