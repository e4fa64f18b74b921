"""The packet rules a netem fault adds (faults/impair.py), found again after their run died.

Each rule's comment is `ims-testbed-fault <target> <pid>:<start ticks>` of the run that added
it. A run that is SIGKILLed, or ends with the session that started it, cannot delete its rules;
they let packets pass (`--queue-bypass`) but stay. `testbed up` and `testbed down` delete those
whose run is gone.
"""

from __future__ import annotations

import logging
import shlex
import subprocess

from testbed.local import processes

log = logging.getLogger(__name__)

COMMENT = "ims-testbed-fault"


def owner_tag(pid: int) -> str:
    """`<pid>:<start ticks>` of a process: the part of a rule's comment that says whose it is,
    so a rule whose run was killed is told apart from one a live run holds (PIDs recycle)."""
    handle = processes.handle_of(pid)
    return f"{pid}:{handle.start_ticks}" if handle is not None else str(pid)


def _owner_alive(owner: str) -> bool:
    pid, _, ticks = owner.partition(":")
    if not (pid.isascii() and pid.isdigit()) or (
        ticks and not (ticks.isascii() and ticks.isdigit())
    ):
        return False
    handle = (
        processes.ProcessHandle(int(pid), int(ticks)) if ticks else processes.handle_of(int(pid))
    )
    return handle is not None and handle.alive()


def remove_stale_rules() -> list[str]:
    """Delete the fault rules whose run is gone (SIGKILLed, or ended with its session): they
    let packets pass (`--queue-bypass`) but are the run's leftovers all the same. A rule of a
    live run stays. Returns the rules deleted."""
    try:
        saved = subprocess.run(
            ["iptables-save", "-t", "mangle"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:  # no iptables on this machine: no rules either
        return []
    removed = []
    for line in saved.splitlines():
        if not line.startswith("-A ") or COMMENT not in line:
            continue
        args = shlex.split(line)
        comment = args[args.index("--comment") + 1] if "--comment" in args else ""
        words = comment.split()
        if not words or words[0] != COMMENT or _owner_alive(words[-1]):
            continue
        result = subprocess.run(
            ["iptables", "-w", "-t", "mangle", "-D", *args[1:]], capture_output=True, check=False
        )
        if result.returncode == 0:
            removed.append(line)
            log.warning("removed a fault rule left by a run that is gone: %s", line)
    return removed
