"""The run as the scenario controller's panel shows it (its Experiment tab): each sampled row,
the proxies' states and the scaling events, pushed to POST /experiment/samples.

Best effort by design: `offer` only converts the row and queues it (bounded), and a background
thread does the pushing with short timeouts, backing off while the controller does not answer;
a panel that is down, slow or refusing never fails or slows the run. When the controller holds
fewer samples than were pushed (it was restarted, a fault killed it), the next push resends the
kept backlog; the controller ignores samples it already has.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from scaling_policy.policy import Readiness
from testbed.local.state import Component
from testbed.sample import Sample as TakenSample
from testbed_messages.experiment import (
    MAX_EVENTS,
    MAX_PUSH,
    ExperimentInfo,
    ProxySample,
    ProxyStateName,
    ProxyView,
    Sample,
    SamplesPush,
    ScalingEvent,
)

log = logging.getLogger(__name__)
CHUNK = 200  # samples per POST when a backlog is resent

PROXY_FIELDS = tuple(ProxySample.model_fields)
_INTS = frozenset({"proxies", "replicas", "desired_proxies", "ready_proxies"})
_FLOATS = frozenset(Sample.model_fields) - _INTS - {"per_proxy"}


class BadValue(ValueError):
    """A cell that is not what its column holds; the message names the column."""


def _number(column: str, value: object) -> float | None:
    """A row's cell as a finite number, None when empty or not finite (NaN: not measured)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadValue(f"column {column}: {value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise BadValue(f"column {column}: {value!r} is not a number") from None
    return number if math.isfinite(number) else None


def to_sample(row: Mapping[str, object]) -> Sample:
    """A time-series row (the runner's dict, or timeseries.csv's strings) as the panel's
    Sample: the columns it draws, `<proxy>.p99_ms` and the like per proxy; the others are left
    out. A proxy with no value in the row was not there (not started yet, or gone)."""
    fields: dict[str, Any] = {}
    per_proxy: dict[str, dict[str, float]] = {}
    for column, value in row.items():
        if column in _FLOATS or column in _INTS:
            number = _number(column, value)
            if number is not None and column in _INTS:
                if number < 0 or number != int(number):
                    raise BadValue(f"column {column}: {value!r} is not a count")
                fields[column] = int(number)
            elif number is not None:
                fields[column] = number
            continue
        proxy, _dot, field = column.rpartition(".")
        if proxy and field in PROXY_FIELDS:
            number = _number(column, value)
            if number is not None:
                per_proxy.setdefault(proxy, {})[field] = number
    if "t_s" not in fields:
        raise BadValue("column t_s: missing or empty")
    return Sample(**fields, per_proxy={name: ProxySample(**v) for name, v in per_proxy.items()})


def scaling_events(autoscaler_rows: Sequence[Mapping[str, object]]) -> list[ScalingEvent]:
    """The syncs of autoscaler.csv that changed the target (every sync is logged)."""
    events = []
    for row in autoscaler_rows:
        before, after = row.get("target_before"), row.get("target_after")
        t_s = _number("t_s", row.get("t_s"))
        b, a = _number("target_before", before), _number("target_after", after)
        if t_s is None or b is None or a is None or b == a:
            continue
        events.append(
            ScalingEvent(
                t_s=t_s, before=int(b), after=int(a), reason=str(row.get("reason", ""))[:500]
            )
        )
    return events


def proxy_states(
    proxies: Sequence[Component], readiness: Readiness | None
) -> dict[str, ProxyStateName]:
    """Each proxy's state now, from the testbed's pool and the autoscaler's scaler (without
    one, a running proxy is ready): no request to any component, so the system under test
    does not feel the panel. A proxy being started and enabled (or still pending) is
    `starting`; one the scaler took out of the ready set that still runs is `draining`."""
    states: dict[str, ProxyStateName] = {}
    for proxy in proxies:
        handle = proxy.handle
        if handle is None or not handle.alive():
            states[proxy.name] = "dead"
        elif readiness is None or proxy.name in readiness.ready:
            states[proxy.name] = "ready"
        elif proxy.name in readiness.pending:
            states[proxy.name] = "starting"
        else:
            states[proxy.name] = "draining"
    for name in sorted(readiness.pending if readiness else ()):
        states.setdefault(name, "starting")  # asked for, not created yet
    return states


class PanelFeed:
    """Pushes the run to the scenario controller from a thread of its own."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        info: ExperimentInfo,
        states: Callable[[], dict[str, ProxyStateName]],
        *,
        timeout_s: float = 1.0,
        keep: int = 3600,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.url = f"{url}/experiment/samples"
        self.headers = dict(headers)
        self.info = info
        self._states = states
        self.timeout = httpx.Timeout(timeout_s, connect=min(0.5, timeout_s))
        self.max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._wake = threading.Event()  # a row or the end to push
        self._stop = threading.Event()
        self._pending: deque[Sample] = deque(maxlen=MAX_PUSH)
        self._history: deque[Sample] = deque(maxlen=min(keep, MAX_PUSH))
        self._events: deque[ScalingEvent] = deque(maxlen=MAX_EVENTS)
        self._seen: dict[str, tuple[float, float]] = {}  # proxy -> first and last t_s
        self._resync = False
        self._last_problem: str | None = None
        self.pushes = 0  # answered with 200, for tests and the log
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="panel-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, taken: TakenSample, events: Sequence[ScalingEvent] = ()) -> None:
        """Queue a sample (and new scaling events); never blocks on the network. The panel
        gets what timeseries.csv gets: the sample's row, as `testbed view` reads the file."""
        try:
            sample = to_sample(taken.row())
        except (BadValue, ValueError) as exc:  # a row the panel cannot draw: it goes without
            log.debug("panel feed: row left out: %s", exc)
            return
        with self._lock:
            self._pending.append(sample)
            self._events.extend(events)
        self._wake.set()

    def close(self, status: str, reason: str | None, within_s: float = 3.0) -> None:
        """One last push with how the run ended, waited for at most `within_s`."""
        with self._lock:
            self.info = self.info.model_copy(update={"status": status, "end_reason": reason})
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(within_s)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.0
        with httpx.Client(timeout=self.timeout) as http:
            while True:
                if backoff:  # the controller did not take the last push: pause (rows queue up)
                    self._stop.wait(backoff)
                self._wake.wait()
                self._wake.clear()
                stopping = self._stop.is_set()
                ok = self._push(http)
                if stopping:
                    return
                backoff = 0.0 if ok else min(max(backoff * 2, 1.0), self.max_backoff_s)

    def _push(self, http: httpx.Client) -> bool:
        with self._lock:  # only copies under the lock: `offer` must not wait
            new = list(self._pending)
            self._pending.clear()
            self._history.extend(new)
            samples = list(self._history) if self._resync else new
            events, info = list(self._events), self.info
        proxies = self._proxies(new)
        # a backlog goes in chunks, oldest first: serializing one holds the GIL, and the
        # runner's thread must get it back within milliseconds; a failed chunk ends the try
        chunks = [samples[i : i + CHUNK] for i in range(0, len(samples), CHUNK)] or [[]]
        for number, chunk in enumerate(chunks, 1):
            last = number == len(chunks)
            body = SamplesPush(
                experiment=info,
                samples=chunk,
                proxies=proxies if last else None,
                events=events if last else [],
            )
            try:
                held, capacity = self._post(http, body)
            except (httpx.HTTPError, _Refused, ValueError, KeyError, TypeError) as exc:
                self.failures += 1
                self._note(f"{type(exc).__name__}: {exc}")
                with self._lock:
                    self._resync = True  # what it missed goes again once it answers
                return False
        self.pushes += 1
        self._note(None)
        with self._lock:
            self._resync = held < min(len(self._history), capacity)
        return True

    def _post(self, http: httpx.Client, body: SamplesPush) -> tuple[int, int]:
        """POST one push; (samples held, capacity) from the answer."""
        response = http.post(
            self.url,
            content=body.model_dump_json(exclude_none=True),
            headers={**self.headers, "content-type": "application/json"},
        )
        if response.status_code != 200:
            raise _Refused(f"HTTP {response.status_code}: {response.text[:200]}")
        answer = response.json()
        return int(answer["held"]), int(answer["capacity"])

    def _proxies(self, new: list[Sample]) -> list[ProxyView] | None:
        for sample in new:  # when each proxy had data
            for name in sample.per_proxy:
                first, _last = self._seen.get(name, (sample.t_s, sample.t_s))
                self._seen[name] = (first, sample.t_s)
        try:
            states = self._states()
        except Exception as exc:  # the pool could not be read: the panel keeps what it has
            self._note(f"proxy states: {exc}")
            return None
        views = []
        for name, state in sorted(states.items()):
            seen = self._seen.get(name)
            views.append(
                ProxyView(
                    name=name,
                    state=state,
                    first_t_s=seen[0] if seen else None,
                    last_t_s=seen[1] if seen else None,
                )
            )
        return views

    def _note(self, problem: str | None) -> None:
        """Log a change of the feed's health once, not every second."""
        if problem != self._last_problem:
            if problem is None:
                log.info("panel feed: the scenario controller takes the samples again")
            else:
                log.info("panel feed: not pushed (%s); the run goes on", problem)
            self._last_problem = problem


class _Refused(Exception):
    """The controller answered but did not take the push (a wrong token, read-only)."""
