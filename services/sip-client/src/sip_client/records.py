"""What a pod records per call and per registration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class CallRecord:
    """One call as the caller saw it. Times are Unix seconds.

    RFC 6076 figures: `srd_ms` (session request delay: authenticated INVITE sent -> first
    180/183/2xx), `setup_ms` (first INVITE -> 200 OK); SER is computed over records from
    `final_status` (successes / (attempts - 3xx)).
    """

    call_id: str
    caller: str
    callee: str
    hold_ms: int
    invite_at: float
    challenge_at: float | None = None
    authenticated_invite_at: float | None = None
    ringing_at: float | None = None
    ok_at: float | None = None
    ended_at: float | None = None
    outcome: str = "active"  # active, succeeded, failed
    reason: str = ""
    final_status: int | None = None

    @property
    def setup_ms(self) -> float | None:
        return None if self.ok_at is None else (self.ok_at - self.invite_at) * 1000

    @property
    def srd_ms(self) -> float | None:
        start = self.authenticated_invite_at or self.invite_at
        first = self.ringing_at or self.ok_at
        return None if first is None else (first - start) * 1000

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["setup_ms"] = self.setup_ms
        data["srd_ms"] = self.srd_ms
        return data


@dataclass(frozen=True)
class RegistrationResult:
    phone: str
    ok: bool
    reason: str
    at: float
    delay_ms: float  # RFC 6076 registration request delay: first REGISTER -> final answer


@dataclass(frozen=True)
class MalformedInput:
    reason: str
    source: tuple[str, int]
    size: int
