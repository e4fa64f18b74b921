"""What one pod is: its phones, its addresses, its timers."""

from __future__ import annotations

from dataclasses import dataclass, field

from sip_core import Address, TimerSettings
from sip_core.syntax import number


@dataclass(frozen=True)
class PodConfig:
    pod: str
    phones: int
    local: Address
    outbound: Address
    domain: str = "testbed.local"
    password_template: str = "{username}"
    register_expires: int = 3600
    reregister_interval: float = 3000.0
    # a failed REGISTER (timeout, error answer) is tried again after this many seconds, spread
    # up to 1.9x by the phone's number so that the failures of a burst do not return as one;
    # 0: never (a real phone keeps trying; a CPU-starved proxy drops a burst's tail)
    register_retry: float = 10.0
    # `register_all` starts the phones' first REGISTERs evenly over this many seconds: when
    # thousands of phones start at one instant their retransmissions stay in step and arrive
    # as waves the load balancer's socket cannot hold (benchmarks/pod_scale.py); 0: all at once
    register_spread: float = 0.0
    ring_delay: float = 0.0
    call_timeout: float = 32.0
    timers: TimerSettings = field(default_factory=TimerSettings)

    def __post_init__(self) -> None:
        if len(self.pod) != 2 or number(self.pod, 99) is None:
            raise ValueError(f"pod id {self.pod!r} must be two digits (00-99)")
        if not 1 <= self.phones <= 100:
            raise ValueError(f"a pod holds 1 to 100 phones, not {self.phones}")
        if self.register_spread < 0:
            raise ValueError(f"register_spread must be >= 0, not {self.register_spread}")

    def phone_ids(self) -> list[str]:
        return [f"{self.pod}{n:02d}" for n in range(self.phones)]
