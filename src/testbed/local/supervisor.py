"""The local testbed's kubelet for the proxies: a process that restarts a proxy that dies, as
a StatefulSet's pod is restarted (`testbed up` starts it).

Every POLL_SECONDS it checks each proxy's PID (with its start time) in the state file. A dead
one is started again under the same name, address and cgroup by `LocalTestbed.restart`, after
the sip-controller's reconciler has taken it out of the load balancers' set (it refuses
connections once its leftover workers are killed, as a container's processes die with its
PID 1), and is then enabled through the same postStart hook. The first restart is immediate;
one that dies again within a minute, or does not come back, waits 1, 2, 4 ... 30 s
(CrashLoopBackOff). Other components are left to whoever stopped them (the fault injector
restarts them when a fault says so; `LocalTestbed.restart` can start any of them again).

Restarts take the state file's lock, so they never race `scale` or `down`; `down` stops the
supervisor first. Each event goes to logs/supervisor.log with its time.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from testbed.config import TestbedSettings
from testbed.local.state import TestbedState
from testbed.local.testbed import PROXY_KIND, SETTINGS_ENV, SUPERVISOR_KIND, LocalTestbed

log = logging.getLogger("testbed.supervisor")

POLL_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 30.0
# a component that ran this long before dying is restarted at once again
STABLE_SECONDS = 60.0
SUPERVISED = (PROXY_KIND,)


@dataclass
class _Restarts:
    recent: int = 0  # restarts since it last ran for STABLE_SECONDS
    up_since: float = 0.0
    died_at: float | None = None


class Supervisor:
    def __init__(self, testbed: LocalTestbed, poll_seconds: float = POLL_SECONDS) -> None:
        self.testbed = testbed
        self.poll_seconds = poll_seconds
        self._restarts: dict[str, _Restarts] = {}

    def run(self) -> None:
        """Until the testbed is gone or another supervisor took over."""
        me = os.getpid()
        deadline = time.monotonic() + 30.0  # `up` records us just after starting us
        while True:
            state = self.testbed.load_state()
            record = state.get(SUPERVISOR_KIND) if state else None
            if record is not None and record.pid == me:
                break
            if time.monotonic() > deadline or (record is not None and record.pid != me):
                log.info("not the testbed's supervisor; exiting")
                return
            time.sleep(0.1)
        log.info("supervising %s", self.testbed.state_dir)
        while True:
            state = self.testbed.load_state()
            record = state.get(SUPERVISOR_KIND) if state else None
            if state is None or record is None or record.pid != me:
                log.info("the testbed is gone; exiting")
                return
            self.pass_once(state)
            time.sleep(self.poll_seconds)

    def pass_once(self, state: TestbedState) -> None:
        for component in state.components:
            if component.kind not in SUPERVISED or component.handle is None:
                continue
            now = time.monotonic()
            restarts = self._restarts.setdefault(component.name, _Restarts(up_since=now))
            if component.handle.alive():
                restarts.died_at = None
                continue
            if restarts.died_at is None:
                restarts.died_at = now
                if now - restarts.up_since >= STABLE_SECONDS:
                    restarts.recent = 0
                log.warning("%s (PID %s) died", component.name, component.pid)
            backoff = (
                min(2.0 ** (restarts.recent - 1), MAX_BACKOFF_SECONDS) if restarts.recent else 0
            )
            if now < restarts.died_at + backoff:
                continue
            restarts.recent += 1
            try:
                restarted = self.testbed.restart(component.name, component.pid)
            except Exception as exc:
                restarts.died_at = time.monotonic()
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.error("%s did not come back: %s", component.name, first)
                continue
            restarts.up_since, restarts.died_at = time.monotonic(), None
            if restarted:
                fresh = self.testbed.load_state()
                again = fresh.get(component.name) if fresh else None
                log.warning(
                    "%s is back as PID %s, %.2f s after its death was noticed",
                    component.name,
                    again.pid if again else "?",
                    restarts.up_since - now,
                )


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    raw = os.environ.get(SETTINGS_ENV)
    settings = TestbedSettings.model_validate_json(raw) if raw else TestbedSettings()
    testbed = LocalTestbed(settings, notify=lambda message: log.info("%s", message))
    try:
        Supervisor(testbed).run()
    finally:
        testbed.close()


if __name__ == "__main__":
    main()
