"""Run SIPp scenarios (register, authenticated call, answering UAS) and read their results.

Scenarios live in ./scenarios. Per-user credentials go through the injection file as a whole
`[authentication username=.. password=..]` keyword, because SIPp 3.6.1 does not substitute
fields inside that keyword.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testbed.local import processes

SCENARIOS = Path(__file__).parent / "scenarios"
# Kamailio's parallel workers may deliver 100/180 after the 200: do not abort on those
_COMMON = ["-nostdin", "-default_behaviors", "all,-abortunexp"]


class SippError(RuntimeError):
    pass


# uac.xml's authenticated INVITE: SIPp's own branch, or one fixed per call so that copies of it
# are retransmissions of the same transaction
_RETRANSMITTED_BRANCH = "z9hG4bK-auth-[pid]-[call_number]"


def render_scenario(name: str, final: int = 200, retransmitting: bool = False) -> str:
    """A scenario file's text with its placeholders filled: {{FINAL}} (the final answer
    expected), and uac.xml's {{AUTH_BRANCH}} and {{AFTER_ANSWER}} (nothing, or with
    `retransmitting` the authenticated INVITE sent again twenty times once answered)."""
    text = (SCENARIOS / name).read_text()
    after = (SCENARIOS / "retransmit_answered_invite.part.xml").read_text()
    values = {
        "{{FINAL}}": str(final),
        "{{AFTER_ANSWER}}": after if retransmitting else "",
        "{{AUTH_BRANCH}}": _RETRANSMITTED_BRANCH if retransmitting else "[branch]",
    }
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    retransmissions: int
    # response times in ms per SIPp rtd: 1 = first INVITE -> 407, 2 = authenticated INVITE -> 200
    rtt_ms: dict[int, list[float]] = field(default_factory=dict)
    errors: str = ""
    cpu_seconds: float = 0.0  # user + system CPU of the sipp process

    @property
    def attempted(self) -> int:
        return self.successful + self.failed


def _sipp_binary() -> str:
    found = shutil.which("sipp")
    if not found:
        raise SippError("sipp not found: install the sip-tester package (scripts/setup.sh)")
    return found


def _run_measured(argv: list[str], cwd: Path, timeout: float) -> tuple[int, str, float]:
    """Run to completion; (exit status, stderr, CPU seconds of that very process)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise subprocess.TimeoutExpired(argv, timeout)
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return proc.returncode, stderr, usage.ru_utime + usage.ru_stime


def _auth(user: str, password: str) -> str:
    return f"[authentication username={user} password={password}]"


class SippRunner:
    def __init__(
        self,
        workdir: Path,
        domain: str = "testbed.local",
        password_for: Callable[[str], str] = lambda user: user,
    ) -> None:
        self.workdir = workdir
        self.domain = domain
        self.password_for = password_for
        workdir.mkdir(parents=True, exist_ok=True)

    # -- UAS ---------------------------------------------------------------------------------

    def start_uas(self, address: str, port: int) -> processes.ProcessHandle:
        """An answering UA (180, 200, then 200 for BYE) for every INVITE it receives."""
        argv = [
            _sipp_binary(),
            "-sf",
            str(SCENARIOS / "uas.xml"),
            "-i",
            address,
            "-p",
            str(port),
            *_COMMON,
            "-trace_err",
            "-error_file",
            str(self.workdir / f"uas-{port}-errors.log"),
        ]
        log_file = self.workdir / f"uas-{port}.log"
        handle = processes.spawn(
            argv,
            {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "TERM": "dumb"},
            log_file,
            cwd=self.workdir,
        )
        return handle

    # -- UAC runs ----------------------------------------------------------------------------

    def register(
        self,
        users: Iterable[str],
        contact: str,
        target: str,
        local: str,
        rate: float = 200.0,
        timeout: float = 120.0,
        passwords: dict[str, str] | None = None,
        tag: str = "register",
        expect: int = 200,
        count: int | None = None,
    ) -> SippResult:
        """REGISTER each user (401, then with credentials) with Contact user@`contact`; a
        registration counts as successful when the final answer is `expect`. `count` more than
        the users registers them again in turn (refreshes of their bindings)."""
        passwords = passwords or {}
        rows = [
            f"{u};{_auth(u, passwords.get(u) or self.password_for(u))};{contact};{self.domain}"
            for u in users
        ]
        return self._run(
            "register.xml",
            rows,
            target,
            local,
            rate,
            count or len(rows),
            timeout,
            tag,
            final=expect,
        )

    def challenges(
        self,
        pairs: Sequence[tuple[str, str]],
        target: str,
        local: str,
        rate: float,
        count: int,
        timeout: float = 120.0,
        tag: str = "challenges",
    ) -> SippResult:
        """First INVITEs without credentials, each answered with 407 and nothing more (the
        challenge half of a call, and what a retransmitted first INVITE costs the proxy)."""
        rows = [f"{a};{b};;{self.domain}" for a, b in pairs]
        return self._run("challenge.xml", rows, target, local, rate, count, timeout, tag)

    def calls(
        self,
        pairs: Sequence[tuple[str, str]],
        target: str,
        local: str,
        rate: float,
        count: int | None = None,
        hold_ms: int = 0,
        timeout: float = 300.0,
        tag: str = "calls",
        limit: int | None = None,
        expect: int = 200,
        retransmitting: bool = False,
    ) -> SippResult:
        """INVITE, 407, ACK, INVITE with credentials, 200, ACK, BYE after `hold_ms`; with
        another `expect` the authenticated INVITE must be refused with that status;
        `retransmitting`: the authenticated INVITE is sent again twenty times once
        answered."""
        rows = [f"{a};{b};{_auth(a, self.password_for(a))};{self.domain}" for a, b in pairs]
        extra = ["-d", str(hold_ms)]
        if limit is not None:
            extra += ["-l", str(limit)]
        scenario = "uac.xml" if expect == 200 else "uac_rejected.xml"
        if retransmitting and expect != 200:
            raise ValueError("retransmitting calls are answered calls (expect 200)")
        return self._run(
            scenario,
            rows,
            target,
            local,
            rate,
            count or len(rows),
            timeout,
            tag,
            extra,
            expect,
            retransmitting,
        )

    def _run(
        self,
        scenario: str,
        rows: list[str],
        target: str,
        local: str,
        rate: float,
        count: int,
        timeout: float,
        tag: str,
        extra: list[str] | None = None,
        final: int = 200,
        retransmitting: bool = False,
    ) -> SippResult:
        run_dir = self.workdir / tag
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        scenario_file = run_dir / scenario
        scenario_file.write_text(render_scenario(scenario, final, retransmitting))
        injection = run_dir / "injection.csv"
        injection.write_text("SEQUENTIAL\n" + "\n".join(rows) + "\n")
        host, _, port = local.rpartition(":")
        stat_file = run_dir / "stat.csv"
        argv = [
            _sipp_binary(),
            target,
            "-sf",
            str(scenario_file),
            "-inf",
            str(injection),
            "-m",
            str(count),
            "-r",
            f"{rate:g}",
            "-rp",
            "1000",
            "-i",
            host,
            "-p",
            port,
            *_COMMON,
            "-recv_timeout",
            "10000",
            "-timeout",
            f"{int(timeout)}s",
            "-timeout_error",
            "-trace_stat",
            "-stf",
            str(stat_file),
            "-fd",
            "1",
            "-trace_rtt",
            "-rtt_freq",
            "1",
            "-trace_err",
            "-error_file",
            str(run_dir / "errors.log"),
            *(extra or []),
        ]
        try:
            returncode, stderr, cpu = _run_measured(argv, run_dir, timeout + 30)
        except subprocess.TimeoutExpired as exc:
            raise SippError(f"sipp {scenario} did not finish within {timeout + 30:.0f} s") from exc
        if returncode not in (0, 1) or not stat_file.exists():
            raise SippError(f"sipp {scenario} exited {returncode}: {stderr.strip()[-2000:]}")
        result = self._read(run_dir, returncode)
        result.cpu_seconds = cpu
        return result

    @staticmethod
    def _read(run_dir: Path, returncode: int) -> SippResult:
        with (run_dir / "stat.csv").open() as f:
            rows = list(csv.DictReader(f, delimiter=";"))
        last = rows[-1]
        rtt: dict[int, list[float]] = {}
        for rtt_file in run_dir.glob("*_rtt.csv"):
            with rtt_file.open() as f:
                for record in csv.DictReader(f, delimiter=";"):
                    try:
                        rtt.setdefault(int(record["rtd_no"]), []).append(
                            float(record["response_time_ms"])
                        )
                    except (KeyError, ValueError):
                        continue
        errors_file = run_dir / "errors.log"
        return SippResult(
            returncode=returncode,
            successful=int(last["SuccessfulCall(C)"]),
            failed=int(last["FailedCall(C)"]),
            retransmissions=int(last["Retransmissions(C)"]),
            rtt_ms=rtt,
            errors=errors_file.read_text(errors="replace")[-4000:] if errors_file.exists() else "",
        )
