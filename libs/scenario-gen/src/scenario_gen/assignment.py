"""Who calls whom: callers in the even pods call the same phone in the next odd pod.

Invites take the caller phones round-robin, pod by pod (consecutive invites come from
different pods). All calls last the same hold time, so the phone used longest ago is always
the next in turn: if that one may still be in its call, every phone is, and the pods are too
few for the rate. The callee is only ever called by its partner, so it is free when its
caller is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scenario_csv import phone_id
from scenario_csv.ids import PODS
from scenario_gen.errors import CapacityError

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PhonePlan:
    pods: int = 2
    phones_per_pod: int = 100
    first_pod: int = 0

    def __post_init__(self) -> None:
        if self.first_pod % 2:
            raise CapacityError(f"first_pod {self.first_pod} is odd; callers sit in even pods")
        if self.pods < 2 or self.first_pod + self.pods > PODS:
            raise CapacityError(
                f"pods {self.first_pod}..{self.first_pod + self.pods - 1}: need at least 2 "
                f"pods, numbered below {PODS}"
            )
        if not 1 <= self.phones_per_pod <= 100:
            raise CapacityError(f"phones_per_pod {self.phones_per_pod}: 1-100")

    @property
    def caller_pods(self) -> list[int]:
        return list(range(self.first_pod, self.first_pod + self.pods - 1, 2))

    @property
    def callers(self) -> int:
        return len(self.caller_pods) * self.phones_per_pod

    def pairs(self) -> list[tuple[str, str]]:
        """(caller, callee) in the order invites use them."""
        return [
            (phone_id(pod, phone), phone_id(pod + 1, phone))
            for phone in range(self.phones_per_pod)
            for pod in self.caller_pods
        ]

    def check_peak(self, peak_rate: float, hold_s: float) -> None:
        """Refuse up front when the peak rate alone keeps more calls up than there are callers
        (Poisson bursts are caught per invite by HoldTimeGuard)."""
        busy = peak_rate * hold_s
        if hold_s <= 0 or busy <= self.callers:
            return
        caller_pods = math.ceil(busy / self.phones_per_pod)
        need = (
            f"at least {2 * caller_pods} pods of {self.phones_per_pod} phones"
            if 2 * caller_pods <= PODS - self.first_pod
            else f"more than the {PODS} pods the 4-digit IDs allow; lower the rate or the hold time"
        )
        raise CapacityError(
            f"too few pods: at the peak rate of {peak_rate:g} invites/s a hold time of "
            f"{hold_s:g} s keeps {busy:.0f} calls up at once, but {self.pods} pods of "
            f"{self.phones_per_pod} phones have {self.callers} callers (even pods call odd "
            f"pods); that needs {need}"
        )


class HoldTimeGuard:
    """Checks, chunk by chunk, that invite k reuses its caller (that of invite k - callers) no
    earlier than the hold time after it; keeps only the last `callers` invite times."""

    def __init__(self, plan: PhonePlan, hold_ms: int) -> None:
        self.plan = plan
        self.hold_ms = hold_ms
        self._pairs = plan.pairs()
        self._recent: IntArray = np.empty(0, dtype=np.int64)
        self._seen = 0

    def check(self, at_ms: IntArray) -> None:
        n = self.plan.callers
        joined = np.concatenate((self._recent, at_ms))
        if len(joined) > n:
            gaps = joined[n:] - joined[:-n]
            short = np.flatnonzero(gaps < self.hold_ms)
            if len(short):
                self._fail(int(short[0]), joined, n)
        self._seen += len(at_ms)
        self._recent = joined[-n:]

    def _fail(self, index: int, joined: IntArray, n: int) -> None:
        invite = self._seen - len(self._recent) + index + n
        caller, _ = self._pairs[invite % n]
        then, now = int(joined[index]), int(joined[index + n])
        raise CapacityError(
            f"too few pods: invite {invite + 1} at {now / 1000:.3f} s would call {caller} "
            f"{(now - then) / 1000:.3f} s after its previous call began, within the hold time "
            f"of {self.hold_ms / 1000:g} s; all {n} callers of {self.plan.pods} pods are busy "
            "then (a Poisson burst needs headroom over peak rate x hold time): add pods or "
            "lower the rate or hold time"
        )
