"""What each client transaction and each timer of the pod is for.

The transaction layer carries a transaction's context without reading it; the pod `match`es on
these small frozen values when a response or a timeout comes back, and on its own timers when
they fire. A REGISTER's and an INVITE's context holds its digest flow (sip-core's
`DigestAuth.auth_flow`), so the retry with credentials goes out under the same context.
"""

from __future__ import annotations

from dataclasses import dataclass

from sip_client.ua.state import IncomingCall, OutgoingCall, Registration
from sip_core import AuthFlow

# -- client transactions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterTx:
    registration: Registration
    flow: AuthFlow


@dataclass(frozen=True, slots=True)
class InviteTx:
    call: OutgoingCall
    flow: AuthFlow


@dataclass(frozen=True, slots=True)
class ByeTx:
    call: OutgoingCall


TxContext = RegisterTx | InviteTx | ByeTx

# -- the pod's own timers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HangUp:
    """The hold time is over: send the BYE."""

    call: OutgoingCall


@dataclass(frozen=True, slots=True)
class CallDeadline:
    """No final answer within the call timeout: the call fails."""

    call: OutgoingCall


@dataclass(frozen=True, slots=True)
class Answer:
    """The ring delay is over: send the 200."""

    call: IncomingCall


@dataclass(frozen=True, slots=True)
class Forget:
    """An answered call the caller never hung up: drop its entry."""

    call: IncomingCall


@dataclass(frozen=True, slots=True)
class Reregister:
    """Refresh the binding, or try a failed registration again."""

    registration: Registration


Timer = HangUp | CallDeadline | Answer | Forget | Reregister
