"""Benchmark: how punctually the scenario controller dispatches invites, quiet and next to a hog.

A 60 s scenario at 1000 invites/s goes to 20 connected WebSocket clients (lightweight stand-ins
for sip-client pods that only count and timestamp what they receive). Printed: invites/s
achieved and the schedule lag (actual send time minus the absolute scheduled time, from the
controller's own run log) at p50, p99 and max, plus how late the clients received them.

Two passes over the same controller: quiet, then with a CPU hog (testbed.local.noise_hog, one
busy process) on the other core. The controller is pinned to one CPU (--controller-cpu) and this
benchmark's clients and the hog to the other, in both passes, so the passes differ by the hog
alone (on a machine with one CPU nothing is pinned and the hog shares it). Baseline in the same
run: the naive way, sleeping each row's wait in turn before sending (what the paper warns
drifts), over the same sockets, quiet.

    uv run python benchmarks/scenario_dispatch.py [--rate 1000] [--seconds 60] [--clients 20] \
        [--no-hog] [--controller-cpu 0]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import websockets

import api_token
from testbed.local import processes
from testbed.local.cpusets import format_cpu_list
from testbed_messages import Hello, Invite, decode_controller, encode

HOST, PORT = "127.0.0.1", 8131
URL = f"http://{HOST}:{PORT}"
HEADER = "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s"
# the benchmark starts its own controller: API_TOKEN if set, else a fresh one for this run;
# uploads, runs and the clients' handshakes carry it
TOKEN = os.environ.get(api_token.ENV_NAME) or api_token.generate()
AUTH = api_token.bearer(TOKEN)


def write_scenario(path: Path, rate: int, seconds: int, clients: int) -> None:
    wait = 1000 / rate
    with path.open("w") as f:
        f.write(HEADER + "\n")
        total = rate * seconds
        for i in range(total):
            pod = 2 * (i % clients)  # even pods call the next odd pod
            phone = (i // clients) % 100
            # waits are whole milliseconds: spread the remainder so the rate stays exact
            w = int((i + 1) * wait) - int(i * wait)
            second = int(i * wait) // 1000
            f.write(f"{pod:02d}{phone:02d};{pod + 1:02d}{phone:02d};{w};{second};{rate}\n")


class Receivers:
    def __init__(self) -> None:
        self.received: dict[int, float] = {}  # seq -> wall time received

    async def client(self, pod: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
        async with websockets.connect(
            f"ws://{HOST}:{PORT}/ws/clients",
            additional_headers=AUTH,
            compression=None,
            max_queue=None,
        ) as ws:
            await ws.send(encode(Hello(pod=pod, phones=100)))
            await ws.recv()
            ready.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                message = decode_controller(raw)
                if isinstance(message, Invite) and message.seq is not None:
                    self.received[message.seq] = time.time()


TICKS = os.sysconf("SC_CLK_TCK")


def scheduling(pid: int) -> tuple[float, float]:
    """(CPU seconds, seconds spent runnable but waiting for a CPU) of a process, all threads:
    the second says how much of the lag the machine caused rather than the controller."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            waited += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):  # a thread that just ended
            continue
    return (int(fields[11]) + int(fields[12])) / TICKS, waited / 1e9


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(q / 100 * len(ordered)) - 1)] if ordered else float("nan")


async def controller_run(
    scenario: Path, clients: int, seconds: int, name: str, pid: int
) -> dict[str, float]:
    receivers = Receivers()
    stop = asyncio.Event()
    ready = [asyncio.Event() for _ in range(clients)]
    tasks = [
        asyncio.create_task(receivers.client(f"{2 * i:02d}", ready[i], stop))
        for i in range(clients)
    ]
    await asyncio.gather(*(r.wait() for r in ready))
    async with httpx.AsyncClient(timeout=120, headers=AUTH) as http:
        with scenario.open("rb") as data:
            stored = await http.post(f"{URL}/scenarios", params={"name": name}, content=data.read())
        stored.raise_for_status()
        cpu_before, waited_before = scheduling(pid)
        run = (await http.post(f"{URL}/runs", json={"scenario": name})).json()
        for _ in range(10 * seconds + 600):  # poll until the run ends (bounded)
            if (await http.get(f"{URL}/runs/{run['id']}")).json()["state"] != "running":
                break
            await asyncio.sleep(0.5)
        cpu_after, waited_after = scheduling(pid)
        log = (await http.get(f"{URL}/runs/{run['id']}/log")).text
    await asyncio.sleep(1)
    stop.set()
    await asyncio.gather(*tasks)
    rows = list(csv.DictReader(log.splitlines()))
    sent = [r for r in rows if r["status"] == "sent"]
    lags = [float(r["lag_ms"]) for r in sent]
    first, last = float(sent[0]["sent_at"]), float(sent[-1]["sent_at"])
    delivery = [
        (receivers.received[int(r["seq"])] - float(r["scheduled_at"])) * 1000
        for r in sent
        if int(r["seq"]) in receivers.received
    ]
    return {
        "invites": len(sent),
        "received": len(receivers.received),
        "per_s": (len(sent) - 1) / (last - first),
        "lag_p50": pct(lags, 50),
        "lag_p99": pct(lags, 99),
        "lag_max": max(lags),
        "delivery_p99": pct(delivery, 99),
        "cpu_ms_per_invite": 1000 * (cpu_after - cpu_before) / max(len(sent), 1),
        "runqueue_wait_s": waited_after - waited_before,
        "span_error_ms": ((last - first) - (seconds - 1 / (len(sent) / seconds))) * 1000,
    }


async def naive_run(rows: list[list[str]], clients: int) -> dict[str, float]:
    """The baseline: send, then sleep the row's wait, one row after another."""
    sockets = [
        await websockets.connect(f"ws://{HOST}:{PORT + 1}", compression=None)
        for _ in range(clients)
    ]
    loop = asyncio.get_running_loop()
    start = loop.time()
    lags = []
    elapsed_ms = 0
    for seq, (caller, callee, wait, _s, _r) in enumerate(rows):
        due = start + elapsed_ms / 1000
        await sockets[(int(caller[:2]) // 2) % clients].send(
            encode(Invite(caller=caller, callee=callee, seq=seq))
        )
        lags.append((loop.time() - due) * 1000)
        elapsed_ms += int(wait)
        await asyncio.sleep(int(wait) / 1000)
    span = loop.time() - start
    for ws in sockets:
        await ws.close()
    return {
        "invites": len(rows),
        "per_s": len(rows) / span,
        "lag_p50": pct(lags, 50),
        "lag_p99": pct(lags, 99),
        "lag_max": max(lags),
    }


async def sink_server() -> websockets.Server:
    async def sink(ws: websockets.ServerConnection) -> None:
        async for _ in ws:
            pass

    return await websockets.serve(sink, HOST, PORT + 1, compression=None)


def placement(controller_cpu: int) -> tuple[set[int], set[int]] | None:
    """(the controller's CPU, the other CPUs: clients and hog); None on a single CPU."""
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        return None
    if controller_cpu not in cpus:
        raise SystemExit(f"--controller-cpu {controller_cpu} is not one of this process's {cpus}")
    return {controller_cpu}, cpus - {controller_cpu}


def pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def wait_healthy(log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{URL}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(processes.tail(log))
        time.sleep(0.1)


def row(label: str, figures: dict[str, float]) -> str:
    numbers = " ".join(f"{figures[k]:>8.2f}" for k in ("per_s", "lag_p50", "lag_p99", "lag_max"))
    return f"{label:24} {figures['invites']:>8.0f} {numbers}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--hog",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the second pass, with a CPU hog on the other core (default: on)",
    )
    parser.add_argument("--controller-cpu", type=int, default=0)
    args = parser.parse_args()
    split = placement(args.controller_cpu)
    controller_cpus, other_cpus = split if split else (None, None)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="scenario-dispatch-") as tmp:
        workdir = Path(tmp)
        scenario = workdir / "dispatch.csv"
        write_scenario(scenario, args.rate, args.seconds, args.clients)
        env = {
            **os.environ,
            "SCENARIO_CONTROLLER_HOST": HOST,
            "SCENARIO_CONTROLLER_PORT": str(PORT),
            "SCENARIO_DIR": str(workdir / "scenarios"),
            "RUNS_DIR": str(workdir / "runs"),
            "SIP_CONTROLLER_URL": "",
            "LOG_LEVEL": "warning",
            api_token.ENV_NAME: TOKEN,
        }
        if other_cpus is not None:
            os.sched_setaffinity(0, other_cpus)  # the clients, off the controller's CPU
        print(
            f"# {args.seconds} s at {args.rate} invites/s to {args.clients} WebSocket clients; "
            + (
                f"controller pinned to CPU {format_cpu_list(controller_cpus)}, "
                f"clients and hog to CPU {format_cpu_list(other_cpus)}"
                if controller_cpus and other_cpus
                else "one CPU: nothing pinned, the hog shares it with the controller"
            ),
            flush=True,
        )
        handle = processes.spawn(
            [sys.executable, "-m", "scenario_controller"],
            env,
            workdir / "controller.log",
            preexec=pinned(controller_cpus),
        )
        hog: processes.ProcessHandle | None = None
        try:
            wait_healthy(workdir / "controller.log")
            results["controller, quiet"] = asyncio.run(
                controller_run(scenario, args.clients, args.seconds, "dispatch-quiet", handle.pid)
            )
            print(row("controller, quiet", results["controller, quiet"]), flush=True)
            if args.hog:
                hog = processes.spawn(
                    [sys.executable, "-m", "testbed.local.noise_hog", "1"],
                    os.environ,
                    workdir / "hog.log",
                    preexec=pinned(other_cpus),
                )
                results["controller, hog"] = asyncio.run(
                    controller_run(scenario, args.clients, args.seconds, "dispatch-hog", handle.pid)
                )
                processes.stop(hog)
                print(row("controller, hog", results["controller, hog"]), flush=True)
        finally:
            if hog is not None:
                processes.stop(hog)
            processes.stop(handle)

        async def baseline() -> dict[str, float]:
            server = await sink_server()
            try:
                return await naive_run(rows, args.clients)
            finally:
                server.close()
                await server.wait_closed()

        rows = list(csv.reader(scenario.read_text().splitlines()[1:], delimiter=";"))
        naive = asyncio.run(baseline())
    print(f"{'':24} {'invites':>8} {'per_s':>8} {'lag_p50':>8} {'lag_p99':>8} {'lag_max':>8}  (ms)")
    for label, figures in (*results.items(), ("baseline (sleep each)", naive)):
        print(row(label, figures))
    for label, figures in results.items():
        print(
            f"# {label}: clients received {figures['received']:.0f} of {figures['invites']:.0f}; "
            f"scheduled -> received p99 {figures['delivery_p99']:.2f} ms; controller CPU "
            f"{figures['cpu_ms_per_invite']:.3f} ms per invite, runnable but waiting for its CPU "
            f"{figures['runqueue_wait_s']:.2f} s in all"
        )
    print(f"# the baseline was {naive['lag_max'] / 1000:.1f} s behind its schedule by the end")
    quiet = results["controller, quiet"]
    hogged = results.get("controller, hog")
    print(
        f"invites_per_s={quiet['per_s']:.1f} lag_p50_ms={quiet['lag_p50']:.2f} "
        f"lag_p99_ms={quiet['lag_p99']:.2f} lag_max_ms={quiet['lag_max']:.2f}"
        + (
            f" invites_per_s_hog={hogged['per_s']:.1f} lag_p99_hog_ms={hogged['lag_p99']:.2f} "
            f"lag_max_hog_ms={hogged['lag_max']:.2f}"
            if hogged
            else ""
        )
    )


if __name__ == "__main__":
    main()
