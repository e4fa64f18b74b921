"""The workload controller in simulated time: what ProxyScaler does with a thread and real
sleeps (ordered: one proxy at a time, each after its start-up delay; parallel: all at once;
removals at once), computed from the clock whenever it is asked."""

from __future__ import annotations

from collections.abc import Callable

from scaling_policy.policy import Readiness
from testbed.autoscale.scaler import PodManagement, next_step


class SimulatedScaler:
    def __init__(
        self,
        initial_replicas: int,
        clock: Callable[[], float],
        mode: PodManagement = "ordered",
        startup_delay_s: float = 5.0,
        name: Callable[[int], str] = lambda index: f"sip-proxy-{index}",
    ) -> None:
        self.mode = mode
        self.startup_delay_s = startup_delay_s
        self._clock = clock
        self._name = name
        self._target = self._actual = self._requested = initial_replicas
        self._ready_since = {name(i): clock() for i in range(initial_replicas)}
        self._due: float | None = None  # when the growing step in flight is done
        self._free_at = clock()  # when the controller may take its next step

    # the ProxyScaler interface LocalAutoscaler uses
    def start(self) -> None:
        pass

    def stop(self, timeout: float = 120.0) -> None:
        pass

    def set_target(self, replicas: int) -> None:
        self._advance()
        self._target = replicas
        self._advance()

    @property
    def replicas(self) -> int:
        self._advance()
        return self._actual

    def readiness(self) -> Readiness:
        self._advance()
        pending = frozenset(
            self._name(i)
            for i in range(self._actual, max(self._requested, self._target))
            if self._name(i) not in self._ready_since
        )
        return Readiness(dict(self._ready_since), pending)

    def ready(self) -> list[str]:
        """The proxies serving now, in index order."""
        self._advance()
        return list(self._ready_since)

    def _advance(self) -> None:
        now = self._clock()
        while True:
            if self._due is not None:
                if now < self._due:
                    return
                for index in range(self._actual, self._requested):
                    self._ready_since[self._name(index)] = self._due
                self._actual = self._requested
                self._free_at = self._due
                self._due = None
            step = next_step(self._target, self._actual, self.mode)
            if step is None:
                return
            self._requested = step
            if step > self._actual:
                self._due = max(self._free_at, now) + self.startup_delay_s
                continue
            for index in range(step, self._actual):  # draining proxies stop serving now
                self._ready_since.pop(self._name(index), None)
            self._actual = step
