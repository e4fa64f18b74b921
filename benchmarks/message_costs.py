"""Benchmark: what each kind of SIP message costs a Kamailio proxy in CPU (issue 20's costs by
message type, for the simulator's calibration).

A benchmark of calls alone fits one cost per call. This one sends each part of the traffic on
its own, straight to proxy A of a pool of two (each in its own CPU cgroup, limited to a whole
core so it is never throttled), and reads the proxies' CPU counters around each step:

- register: REGISTER, 401, REGISTER with credentials, 200 (refreshes of 100 bindings): A's CPU
  per registration, and B's: the copy B takes in over DMQ (dmq_usrloc replicates every
  registration to every other proxy);
- challenge: a first INVITE without credentials and its 407, nothing more: the challenge half
  of a call, and what a retransmitted first INVITE costs (the proxy keeps no transaction for it
  and challenges it again);
- call: INVITE, 407, ACK, INVITE with credentials, 100, 180, 200, ACK, then BYE and its 200
  after a hold longer than the step: A's CPU until the last call is set up is the set-up's, the
  CPU after it the BYE's;
- absorbed: the same calls with the authenticated INVITE sent again twenty times once its 200 has
  come (the same branch): the difference to a call over the copies A counted (its INVITE
  statistic) is what absorbing one retransmitted INVITE costs (the transaction exists).

The baseline, measured in the same round, is the whole call (set-up plus BYE): each kind is
printed as a share of it, which is what the calibration keeps (a machine's speed moves 2-3x
between hours, the shares much less). Each proxy's idle CPU, measured before each round, is
taken off. The last line holds the means over the rounds as key=value pairs.

    uv run python benchmarks/message_costs.py [--rounds 3] [--rate 20] [--step-seconds 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kamailio_rpc import KamailioRpc
from testbed.config import TestbedSettings
from testbed.local import cgroups, processes
from testbed.local.prometheus import cpu_seconds
from testbed.local.state import Component
from testbed.local.testbed import PROXY_KIND, LocalTestbed
from testbed.sipp import SippResult, SippRunner

UAS = ("127.0.0.1", 5090)
CALLEES = [f"01{n:02d}" for n in range(100)]
PAIRS = [(f"00{n:02d}", f"01{n:02d}") for n in range(100)]
KINDS = ("register", "dmq_replica", "challenge", "absorbed", "call_setup", "bye", "call")


@dataclass(frozen=True)
class Counter:
    """One proxy's CPU seconds so far, read from its cgroup (as the testbed's cAdvisor
    stand-in reads them for Prometheus)."""

    proxy: Component

    def read(self) -> float:
        used = cpu_seconds(self.proxy)
        if used is None:
            raise SystemExit(f"{self.proxy.name}: no readable CPU cgroup, its CPU cannot be read")
        return used


@dataclass
class Round:
    """CPU ms per message (background taken off), one round."""

    ms: dict[str, float]
    copies: float  # retransmitted authenticated INVITEs a call, as A counted them

    def share(self, kind: str) -> float:
        return self.ms[kind] / self.ms["call"]


def _idle(a: Counter, b: Counter, seconds: float) -> tuple[float, float]:
    """Each proxy's CPU seconds per second with no traffic."""
    a0, b0, t0 = a.read(), b.read(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    return (a.read() - a0) / elapsed, (b.read() - b0) / elapsed


def _checked(result: SippResult, count: int, what: str) -> None:
    if result.successful < count:
        raise SystemExit(
            f"{what}: {result.successful} of {count} completed ({result.failed} failed): the "
            "costs of a step with failures would count work that was not done"
        )


def measure_round(
    sipp: SippRunner,
    a: Counter,
    b: Counter,
    invites: Callable[[], int],
    target: str,
    rate: float,
    seconds: float,
    n: int,
) -> Round:
    count = round(rate * seconds)
    idle_a, idle_b = _idle(a, b, 10.0)
    ms: dict[str, float] = {}

    a0, b0, t0 = a.read(), b.read(), time.monotonic()
    result = sipp.register(
        CALLEES,
        f"{UAS[0]}:{UAS[1]}",
        target,
        "127.0.0.1:5093",
        rate=rate,
        count=count,
        timeout=seconds * 4 + 60,
        tag=f"register-{n}",
    )
    time.sleep(2.0)  # the last replicas reach B
    elapsed = time.monotonic() - t0
    _checked(result, count, "register")
    ms["register"] = 1000 * (a.read() - a0 - idle_a * elapsed) / count
    ms["dmq_replica"] = 1000 * (b.read() - b0 - idle_b * elapsed) / count

    a0, t0 = a.read(), time.monotonic()
    result = sipp.challenges(
        PAIRS, target, "127.0.0.1:5094", rate, count, seconds * 4 + 60, f"challenge-{n}"
    )
    elapsed = time.monotonic() - t0
    _checked(result, count, "challenge")
    ms["challenge"] = 1000 * (a.read() - a0 - idle_a * elapsed) / count

    # calls held past the step's end: the set-ups all happen before the first BYE
    hold_s = seconds + 5.0
    outcome: list[SippResult] = []

    def place_calls() -> None:
        outcome.append(
            sipp.calls(
                PAIRS,
                target,
                "127.0.0.1:5092",
                rate=rate,
                count=count,
                hold_ms=int(hold_s * 1000),
                timeout=seconds * 4 + hold_s + 60,
                tag=f"calls-{n}",
            )
        )

    a0, t0 = a.read(), time.monotonic()
    caller = threading.Thread(target=place_calls)
    caller.start()
    time.sleep(seconds + 2.5)
    a1, t1 = a.read(), time.monotonic()
    caller.join()
    a2, t2 = a.read(), time.monotonic()
    if not outcome:
        raise SystemExit("calls: SIPp did not finish (see its error above)")
    _checked(outcome[0], count, "calls")
    ms["call_setup"] = 1000 * (a1 - a0 - idle_a * (t1 - t0)) / count
    ms["bye"] = 1000 * (a2 - a1 - idle_a * (t2 - t1)) / count
    ms["call"] = ms["call_setup"] + ms["bye"]

    # the same calls with the authenticated INVITE sent again twenty times: each copy is absorbed
    # by the transaction the first one opened (counted at the proxy: SIPp's own retransmission
    # timer may send one more)
    invites0 = invites()
    a0, t0 = a.read(), time.monotonic()
    result = sipp.calls(
        PAIRS,
        target,
        "127.0.0.1:5095",
        rate=rate,
        count=count,
        timeout=seconds * 4 + 60,
        tag=f"retransmitting-{n}",
        retransmitting=True,
    )
    elapsed = time.monotonic() - t0
    _checked(result, count, "retransmitting calls")
    whole = 1000 * (a.read() - a0 - idle_a * elapsed) / count
    copies = (invites() - invites0) / count - 2  # less the challenged and the first authenticated
    ms["absorbed"] = (whole - ms["call"]) / copies
    return Round(ms, copies)


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):7.3f} ± {sd:5.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="messages (or calls) per s")
    parser.add_argument("--step-seconds", type=float, default=30.0)
    args = parser.parse_args()
    if cgroups.detect() is None:
        raise SystemExit("no writable cgroup CPU controller: the proxies' CPU cannot be read")

    with tempfile.TemporaryDirectory(prefix="message-costs-") as tmp:
        state_dir = Path(tmp)
        testbed = LocalTestbed(TestbedSettings(testbed_state_dir=state_dir, database_url=None))
        uas: processes.ProcessHandle | None = None
        try:
            testbed.up(2, 1000, "sqlite")
            state = testbed.load_state()
            proxies = state.of_kind(PROXY_KIND) if state else []
            if len(proxies) != 2:
                raise SystemExit(f"expected two proxies, found {len(proxies)}")
            a, b = Counter(proxies[0]), Counter(proxies[1])
            rpc = KamailioRpc(
                f"http://{testbed.settings.proxy_address(0)}:{testbed.settings.proxy_http_port}/RPC",
                token=testbed.api_token(),
            )

            def invites() -> int:
                """The INVITEs proxy A has received."""
                return int(rpc.statistics("core:").get("core:rcv_requests_invite", 0))

            target = proxies[0].endpoints["sip"].removeprefix("udp:")
            sipp = SippRunner(state_dir / "sipp", domain=testbed.settings.sip_domain)
            uas = sipp.start_uas(*UAS)
            lb = f"{testbed.settings.lb_address}:{testbed.settings.lb_sip_port}"
            registered = sipp.register(CALLEES, f"{UAS[0]}:{UAS[1]}", lb, "127.0.0.1:5091")
            _checked(registered, len(CALLEES), "registering the callees")
            print(
                f"# two proxies (1000m each, never throttled here), traffic straight to "
                f"{target}, {args.rate:g}/s for {args.step_seconds:g} s per step; CPU ms per "
                "message with each proxy's idle CPU taken off; share: of a whole call"
            )
            print("round " + " ".join(f"{k:>11}" for k in KINDS))
            rounds: list[Round] = []
            for n in range(args.rounds):
                r = measure_round(sipp, a, b, invites, target, args.rate, args.step_seconds, n)
                rounds.append(r)
                print(
                    f"{n + 1:>5} "
                    + " ".join(f"{r.ms[k]:>11.3f}" for k in KINDS)
                    + f"   ({r.copies:.2f} copies a call)",
                    flush=True,
                )
        finally:
            if uas is not None:
                processes.stop(uas)
            testbed.down()
            testbed.close()

    print(f"# means ± sd over {len(rounds)} rounds, ms of proxy CPU, and share of a whole call")
    for kind in KINDS:
        values = [r.ms[kind] for r in rounds]
        shares = [r.share(kind) for r in rounds]
        print(f"{kind:>12} {_mean_sd(values)} ms   share {_mean_sd(shares)}")
    summary = {k: statistics.fmean(r.share(k) for r in rounds) for k in KINDS if k != "call"}
    call_ms = statistics.fmean(r.ms["call"] for r in rounds)
    print(
        f"call_cpu_ms={call_ms:.3f} " + " ".join(f"{k}_share={v:.3f}" for k, v in summary.items())
    )


if __name__ == "__main__":
    main()
