"""Start background processes and stop exactly them again, by PID.

A PID is only trusted together with the process start time recorded when it was spawned, so a
recycled PID is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessHandle:
    pid: int
    start_ticks: int

    def alive(self) -> bool:
        stat = _read_stat(self.pid)
        return stat is not None and stat[1] == self.start_ticks and stat[0] != "Z"


def _stat_fields(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], pgrp [2]), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name may contain spaces and parentheses: fields start after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def _read_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks), or None if the process is gone."""
    fields = _stat_fields(pid)
    return (fields[0], int(fields[19])) if fields else None


def handle_of(pid: int) -> ProcessHandle | None:
    """A handle on a running process (this one: os.getpid()), or None if it is gone."""
    stat = _read_stat(pid)
    return ProcessHandle(pid, stat[1]) if stat else None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields and int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


class _Held:
    """The interrupt a signal handler raised inside `interrupts_held()` sections (main
    thread; Interrupts raises one at most)."""

    depth = 0
    pending: BaseException | None = None


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """A section that an interrupting signal handler (experiment.lifecycle.Interrupts) does not
    cut: it holds its KeyboardInterrupt until the section ends. Around a spawn and the record of
    its PID, so an interrupt cannot leave a started process that nothing knows of."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers only run in the main thread
        return
    _Held.depth += 1
    try:
        yield
    finally:
        _Held.depth -= 1
        held = _Held.pending
        if _Held.depth == 0 and held is not None:
            _Held.pending = None
            raise held


def hold_interrupt(exc: BaseException) -> bool:
    """For a signal handler: True when `exc` is held for the end of an `interrupts_held()`
    section (raise nothing now), False when there is none (raise it)."""
    if _Held.depth == 0:
        return False
    _Held.pending = _Held.pending or exc  # the first one is the interruption
    return True


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    log_file: Path,
    preexec: Callable[[], None] | None = None,
    cwd: Path | None = None,
) -> ProcessHandle:
    """Start `argv` detached (own session), output appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
            cwd=cwd,
        )
    stat = _read_stat(proc.pid)
    # the child may already have exited; keep a handle that reports it dead
    return ProcessHandle(proc.pid, stat[1] if stat else -1)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _reap_dead(pid: int) -> None:
    """Collect a child known to be dead (a zombie), so its exit is not reaped later elsewhere."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


def stop(handle: ProcessHandle, timeout: float = 10.0) -> bool:
    """SIGTERM, wait, then SIGKILL. Returns True if the process is gone (or was never ours)."""
    if not handle.alive():
        _reap_dead(handle.pid)
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(handle.pid, signal.SIGTERM)
        # a stopped process (a `stop` fault, a debugger) only acts on SIGTERM once continued
        os.kill(handle.pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(handle.pid)
        if not handle.alive():
            _reap_dead(handle.pid)
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(handle.pid, signal.SIGKILL)
    for _ in range(100):
        _reap(handle.pid)
        if not handle.alive():
            _reap_dead(handle.pid)
            return True
        time.sleep(0.05)
    return not handle.alive()


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
