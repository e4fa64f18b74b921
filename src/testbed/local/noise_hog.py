"""The noisy neighbour's busy loop (`python -m testbed.local.noise_hog WORKERS`): WORKERS
processes spinning until stopped; its CPU cgroup's quota decides how much they get."""

from __future__ import annotations

import os
import signal
import sys


def spin() -> None:
    while True:
        pass


def main() -> None:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    children = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            spin()
        children.append(pid)

    def stop(_signum: int, _frame: object) -> None:
        for child in children:
            os.kill(child, signal.SIGKILL)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    spin()


if __name__ == "__main__":
    main()
