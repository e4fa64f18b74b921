"""Reaching a release's services from the machine running the experiment: `kubectl
port-forward` on 127.0.0.1, which works on any cluster the kubeconfig reaches (no ClusterIP
routing or ingress needed). The cluster's Prometheus is then read by the local mode's
client (testbed.local.prometheus.PromQuery)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType


class AccessError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortForward:
    """`kubectl port-forward TARGET LOCAL:REMOTE` while the context is open; `.url` is
    http://127.0.0.1:LOCAL."""

    def __init__(self, kubectl: list[str], namespace: str, target: str, remote_port: int) -> None:
        self.command = [*kubectl, "-n", namespace, "port-forward", "--address", "127.0.0.1"]
        self.target = target
        self.remote_port = remote_port
        self.local_port = 0
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def __enter__(self) -> PortForward:
        self.local_port = _free_port()
        self.process = subprocess.Popen(
            [*self.command, self.target, f"{self.local_port}:{self.remote_port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self.process.stdout.read() if self.process.stdout else ""
                raise AccessError(f"port-forward to {self.target} ended: {out.strip()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.local_port), timeout=0.5),
            ):
                return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise AccessError(f"port-forward to {self.target} did not open in 30 s")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def kubectl_command(kubectl: Path, kubeconfig: Path) -> list[str]:
    return [str(kubectl), f"--kubeconfig={kubeconfig}"]
