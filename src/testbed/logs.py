"""`testbed logs`: the local testbed's per-process log files (each process started by `up` writes
to `<state dir>/logs/<name>.log`, appending across restarts), printed whole, by their last lines,
or followed as `tail -f` does."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from testbed.local.state import TestbedState

_BLOCK = 64 * 1024


def known_logs(state_dir: Path, state: TestbedState | None) -> dict[str, Path]:
    """Name -> log file: every component of the testbed (its recorded log, else where it would
    be), and every other log in `<state dir>/logs/` (a proxy scaled away, a stopped testbed's
    processes: the files stay after `down`)."""
    logs_dir = state_dir / "logs"
    found = {path.stem: path for path in sorted(logs_dir.glob("*.log"))}
    for component in state.components if state is not None else []:
        found[component.name] = Path(component.log or logs_dir / f"{component.name}.log")
    return dict(sorted(found.items()))


def tail_offset(path: Path, lines: int) -> int:
    """Where the last `lines` lines of `path` begin (a final line without a newline counts),
    read from the end in blocks: a log may be large."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        if lines <= 0:
            return end
        position, seen = end, 0
        last = b""  # the byte at the file's end: a trailing newline ends the last line
        while position > 0:
            size = min(_BLOCK, position)
            position -= size
            f.seek(position)
            block = f.read(size)
            if not last:
                last = block[-1:]
                if last == b"\n":
                    seen -= 1  # the final newline does not start another line
            index = len(block)
            while True:
                index = block.rfind(b"\n", 0, index)
                if index < 0:
                    break
                seen += 1
                if seen == lines:
                    return position + index + 1
        return 0


def copy(path: Path, write: Callable[[bytes], None], start: int = 0) -> int:
    """Write `path` from byte `start` to its end; the offset reached."""
    with path.open("rb") as f:
        f.seek(start)
        while chunk := f.read(_BLOCK):
            write(chunk)
        return f.tell()


def follow(
    path: Path,
    write: Callable[[bytes], None],
    start: int,
    stop: threading.Event,
    poll_s: float = 0.25,
) -> None:
    """Write what is added to `path` after byte `start` until `stop` is set (or Ctrl-C: the
    KeyboardInterrupt goes to the caller), as `tail -F`: a file truncated or replaced (removed
    and written again) is read again from its start, a missing one waited for."""
    position = start
    identity: tuple[int, int] | None = None
    while not stop.is_set():
        try:
            info = path.stat()
        except FileNotFoundError:
            identity, position = None, 0  # when it is back, it is another file
            stop.wait(poll_s)
            continue
        now = (info.st_dev, info.st_ino)
        if identity is not None and (now != identity or info.st_size < position):
            position = 0  # another file, or truncated: from its start
        identity = now
        if info.st_size > position:
            position = copy(path, write, position)
        else:
            stop.wait(poll_s)
