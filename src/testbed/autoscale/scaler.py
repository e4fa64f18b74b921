"""Applies the autoscaler's target to the proxies in the background, the way the workload
controller on a cluster would.

`ordered` is a StatefulSet with OrderedReady pod management (the paper's): one proxy at a time,
each created only when the previous one is ready, and removed one at a time. `parallel` is a
Deployment (or a Parallel StatefulSet): all missing proxies at once. `startup_delay_s` is what a
pod spends before it may serve on a cluster (scheduling, container start, the readiness probe's
initial delay: 5 s in the paper's chart); locally a proxy is ready in well under a second.

A step that fails is tried again, `retry_delay_s` later and then at doubling intervals up to
`max_retry_delay_s`, as a workload controller requeues: the target stays what the autoscaler
asked for (the autoscaler only says it again when its answer changes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol

from scaling_policy.policy import Readiness

PodManagement = Literal["ordered", "parallel"]


def next_step(target: int, actual: int, mode: PodManagement) -> int | None:
    """The replica count of the workload controller's next action, or None when there is
    nothing to do: ordered one proxy at a time, parallel straight to the target."""
    if target == actual:
        return None
    if mode == "parallel":
        return target
    return actual + (1 if target > actual else -1)


class Scaler(Protocol):
    """What the autoscaler drives: ProxyScaler here, SimulatedScaler in the simulator."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 120.0) -> None: ...

    def set_target(self, replicas: int) -> None: ...

    @property
    def replicas(self) -> int: ...

    def readiness(self) -> Readiness: ...


class ProxyScaler:
    def __init__(
        self,
        scale: Callable[[int], None],
        initial_replicas: int,
        mode: PodManagement = "ordered",
        startup_delay_s: float = 5.0,
        name: Callable[[int], str] = lambda index: f"sip-proxy-{index}",
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[BaseException], None] | None = None,
        retry_delay_s: float = 2.0,
        max_retry_delay_s: float = 30.0,
    ) -> None:
        self._scale = scale
        self.mode = mode
        self.startup_delay_s = startup_delay_s
        self._name = name
        self._clock = clock
        self._on_error = on_error
        self.retry_delay_s = retry_delay_s
        self.max_retry_delay_s = max_retry_delay_s
        self._lock = threading.Condition()
        self._target = initial_replicas
        self._actual = initial_replicas
        self._requested = initial_replicas  # what the current step is bringing up
        now = clock()
        self._ready_since = {name(i): now for i in range(initial_replicas)}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="proxy-scaler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._thread.join(timeout)

    def set_target(self, replicas: int) -> None:
        with self._lock:
            self._target = replicas
            self._lock.notify_all()

    @property
    def replicas(self) -> int:
        """Proxies running now (ready or draining)."""
        with self._lock:
            return self._actual

    def readiness(self) -> Readiness:
        with self._lock:
            pending = frozenset(
                self._name(i)
                for i in range(self._actual, max(self._requested, self._target))
                if self._name(i) not in self._ready_since
            )
            return Readiness(dict(self._ready_since), pending)

    def _step(self) -> int | None:
        return next_step(self._target, self._actual, self.mode)

    def _run(self) -> None:
        delay = self.retry_delay_s
        while True:
            with self._lock:
                while not self._stopping and self._step() is None:
                    self._lock.wait()
                if self._stopping:
                    return
                step = self._step()
                assert step is not None
                self._requested = step
                growing = step > self._actual
                if not growing:  # draining proxies stop serving now
                    for index in range(step, self._actual):
                        self._ready_since.pop(self._name(index), None)
            if growing and not self._sleep(self.startup_delay_s):  # the pod is pending
                return
            try:
                self._scale(step)
            except Exception as exc:  # the run goes on with what exists; the caller hears of it
                if self._on_error is not None:
                    self._on_error(exc)
                with self._lock:
                    self._requested = self._actual
                if not self._sleep(delay):  # then the same target again
                    return
                delay = min(delay * 2, self.max_retry_delay_s)
                continue
            delay = self.retry_delay_s
            with self._lock:
                now = self._clock()
                for index in range(self._actual, step):
                    self._ready_since[self._name(index)] = now
                self._actual = step
                self._requested = step

    def _sleep(self, seconds: float) -> bool:
        """Wait unless stopped; False when stopped."""
        deadline = self._clock() + seconds
        with self._lock:
            while not self._stopping and self._clock() < deadline:
                self._lock.wait(max(0.0, deadline - self._clock()))
            return not self._stopping
