"""The container engine as the project configures it (docker/engine.sh is the one source).

docker/engine.sh chooses docker (where an engine answers) or podman with the project's own
configuration files; this module asks it, so Python and the shell scripts never disagree.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ENGINE_SCRIPT = ROOT / "docker" / "engine.sh"
_EXPORTED = ("ENGINE", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "TESTBED_CACHE_DIR")


class EngineError(RuntimeError):
    """No usable container engine, or an engine command failed."""


@dataclass(frozen=True)
class Engine:
    name: str  # "docker" or "podman"
    env: dict[str, str]  # the process environment with the engine's configuration

    def run(
        self, *args: str, check: bool = True, timeout: float | None = 120.0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.name, *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise EngineError(
                f"{self.name} {' '.join(args[:3])}... exited {result.returncode}: "
                f"{result.stderr.strip()[-2000:]}"
            )
        return result


def engine(base_env: dict[str, str] | None = None) -> Engine:
    """Source docker/engine.sh and return what it chose, with its environment."""
    env = dict(os.environ if base_env is None else base_env)
    script = (
        f'source "{ENGINE_SCRIPT}" >&2; for v in {" ".join(_EXPORTED)}; do echo "$v=${{!v}}"; done'
    )
    result = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise EngineError(f"docker/engine.sh failed: {result.stderr.strip()}")
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if not values.get("ENGINE"):
        raise EngineError(
            "no container engine: no Docker engine answers and podman is not installed "
            "(scripts/setup-containers.sh installs podman)"
        )
    env.update({k: v for k, v in values.items() if v})
    return Engine(values["ENGINE"], env)
