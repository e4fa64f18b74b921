"""When the phones' registrations before a run were answered, request by request, sans-I/O.

The phones register all at once (the client's default `register_spread` of 0) and refresh
every `reregister_interval_s` after the 200 they got, so the shape of the start's 200s is the
shape of every refresh. That shape comes from the two-request flow on a FIFO proxy: each
proxy first challenges the whole first wave of REGISTERs (401), and the phones' second
REGISTERs, sent as the 401s come back, queue behind what is left of it. So the 200s come out
late and together, at the rate a proxy saves a registration (the DMQ copies of what the others
saved queue behind), not at the rate it does all of one: a refresh arrives faster than the
proxies can serve it (measured: peaks at twice a refresh's mean rate, docs/simulator.md).

The fluid model of proxy_model.py cannot play that flow (a pass adds no work inside itself), and
the start has only a few thousand requests, so it is played here one request at a time, in CFS
periods: each proxy serves its queue in order with the CPU its quota leaves after the
background, a request queued from an earlier period at the batched cost; a REGISTER still
unanswered is sent again on timer E (a copy, processed again and answered again, in vain);
past timer F the phone gives up on it and starts again `retry_periods` later, spread by its
number as the client spreads them (sip-client's `register_retry`, 10 s, times 1.0 to 1.9).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

CHALLENGE, SAVE, REPLICA = 0, 1, 2  # the first REGISTER, the one with credentials, a DMQ copy
RETRY = 3  # a timer: the phone starts its registration again
GAVE_UP, REGISTERED = -2, -1


@dataclass(frozen=True)
class StartCosts:
    """CPU seconds of each request on a proxy, handled alone; `discount` is taken off a request
    that waited from an earlier period (handled back to back with others)."""

    challenge: float
    save: float
    replica: float
    discount: float = 0.0


def start_completions(
    phones: int,
    proxies: int,
    costs: StartCosts,
    budget: float,
    retransmit_periods: IntArray,
    timeout_periods: int,
    retry_periods: int,
    max_periods: int,
    rng: np.random.Generator,
) -> IntArray:
    """The period (from the first REGISTER, sorted) in which each phone got its 200; a phone
    still unregistered after `max_periods` has none. `budget`: CPU seconds per period that
    each proxy has for the REGISTERs; `retransmit_periods`: timer E's firings after a send."""
    if phones <= 0:
        return np.zeros(0, dtype=np.int64)
    if budget <= 0:
        raise ValueError(f"a proxy needs CPU to spare for the registrations, not {budget}")
    n = max(1, proxies)
    proxy_of = rng.integers(0, n, size=phones)  # the LB's Call-ID hash (one Call-ID a phone)
    stage = np.zeros(phones, dtype=np.int64)  # CHALLENGE or SAVE: what the phone waits for
    sent_at = np.zeros(phones, dtype=np.int64)
    done: list[int] = []
    waiting = phones
    queues: list[deque[tuple[int, int, int]]] = [deque() for _ in range(n)]  # (period, kind, phone)
    left = [0.0] * n  # CPU still owed to the request at the head of each queue
    timers: list[tuple[int, int, int, int]] = []  # (period, seq, phone, stage it was sent at)
    seq = itertools.count()

    def send(phone: int, kind: int, now: int) -> None:
        stage[phone] = kind
        sent_at[phone] = now
        queues[proxy_of[phone]].append((now, kind, phone))
        for offset in retransmit_periods:
            heapq.heappush(timers, (now + int(offset), next(seq), phone, kind))

    for phone in range(phones):
        send(phone, CHALLENGE, 0)
    now = 0
    while (waiting or any(queues)) and now < max_periods:
        while timers and timers[0][0] <= now:
            _, _, phone, kind = heapq.heappop(timers)
            if kind == RETRY:
                send(phone, CHALLENGE, now)
            elif stage[phone] == kind and sent_at[phone] + timeout_periods > now:
                queues[proxy_of[phone]].append((now, kind, phone))  # timer E: a copy
        for p in range(n):
            spare = budget
            queue = queues[p]
            while queue and spare > 0:
                arrived, kind, phone = queue[0]
                cost = (costs.challenge, costs.save, costs.replica)[kind]
                owed = left[p] or cost * (1 - costs.discount if arrived < now else 1.0)
                if owed > spare:
                    left[p] = owed - spare
                    break
                spare -= owed
                left[p] = 0.0
                queue.popleft()
                if kind == REPLICA or stage[phone] != kind:
                    continue  # a copy answered in vain: the phone has moved on
                if kind == CHALLENGE:
                    send(phone, SAVE, now)  # the 401 is back: the REGISTER with credentials
                else:
                    stage[phone] = REGISTERED
                    done.append(now)
                    waiting -= 1
                    for other in range(n):
                        if other != p:
                            queues[other].append((now, REPLICA, phone))
        for late in np.flatnonzero((stage >= 0) & (sent_at + timeout_periods <= now)).tolist():
            stage[late] = GAVE_UP  # timer F
            later = now + round(retry_periods * (1 + late % 10 / 10))
            heapq.heappush(timers, (later, next(seq), late, RETRY))
        now += 1
    return np.array(sorted(done), dtype=np.int64)
