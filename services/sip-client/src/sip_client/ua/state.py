"""What the pod remembers per phone (its registration) and per call, mutable as a call goes on."""

from __future__ import annotations

from dataclasses import dataclass

from sip_client.records import CallRecord
from sip_core import Dialog, DigestAuth, Request, ServerTransaction


@dataclass
class Registration:
    phone: str
    auth: DigestAuth  # one per phone: its nonce counts outlive a registration
    call_id: str  # the same for every REGISTER of the phone (RFC 3261 10.2)
    cseq: int = 0
    registered_until: float = 0.0
    started_at: float = 0.0
    last_reason: str = ""


@dataclass
class OutgoingCall:
    record: CallRecord
    auth: DigestAuth
    dialog: Dialog | None = None
    ack: Request | None = None  # the ACK of the 2xx, sent again when the 2xx comes again
    done: bool = False


@dataclass
class IncomingCall:
    request: Request
    transaction: ServerTransaction
    dialog: Dialog
    answered: bool = False
    confirmed: bool = False
