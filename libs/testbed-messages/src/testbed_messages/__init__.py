"""WebSocket messages between the scenario controller and the sip-client pods."""

from __future__ import annotations

import re
import time
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from service_kit import describe

PodId = Annotated[str, Field(pattern=r"^[0-9]{2}$", description="two-digit pod id, 00-99")]
PhoneId = Annotated[str, Field(pattern=r"^[0-9]{4}$", description="four-digit PPNN phone id")]
# a value that becomes a SIP Call-ID header: RFC 3261 25.1 word ["@" word], printable ASCII
# without spaces, so no CR/LF can smuggle a header line in (as sip_core.syntax.is_call_id)
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID = re.compile(rf"{_WORD}(?:@{_WORD})?")


def _call_id(value: str) -> str:
    if not _CALL_ID.fullmatch(value):
        raise ValueError(
            "not a Call-ID: word[@word] of printable ASCII without spaces (RFC 3261 25.1)"
        )
    return value


CallId = Annotated[
    str,
    Field(max_length=256, description="Call-ID: word[@word] of RFC 3261, printable ASCII"),
    AfterValidator(_call_id),
]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- client -> controller ------------------------------------------------------------------


class Hello(_Message):
    type: Literal["hello"] = "hello"
    pod: PodId
    phones: int = Field(ge=1, le=100)
    version: str = ""


class Stats(_Message):
    """A pod's counters, sent every second (cumulative since the pod started)."""

    type: Literal["stats"] = "stats"
    pod: PodId
    at: float = Field(default_factory=time.time)
    phones: int = 0
    registered: int = 0
    calls_started: int = 0
    calls_succeeded: int = 0
    calls_failed: int = 0
    calls_active: int = 0
    calls_answered: int = 0
    malformed: int = 0


class CallRecordMessage(_Message):
    """One finished call as the caller saw it (times are Unix seconds)."""

    type: Literal["call"] = "call"
    call_id: str
    caller: PhoneId
    callee: PhoneId
    outcome: Literal["succeeded", "failed"]
    reason: str = ""
    invite_at: float
    challenge_at: float | None = None
    ok_at: float | None = None
    ended_at: float | None = None


class RegistrationMessage(_Message):
    type: Literal["registration"] = "registration"
    phone: PhoneId
    ok: bool
    reason: str = ""


# -- controller -> client ------------------------------------------------------------------


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    pod: PodId


class Refused(_Message):
    type: Literal["refused"] = "refused"
    reason: str


class RegisterAll(_Message):
    type: Literal["register"] = "register"


class Invite(_Message):
    type: Literal["invite"] = "invite"
    caller: PhoneId
    callee: PhoneId
    hold_ms: int = Field(0, ge=0)
    call_id: CallId | None = None
    seq: int | None = Field(None, ge=0, description="row of the scenario, for the run log")


class Stop(_Message):
    type: Literal["stop"] = "stop"


ClientMessage = Annotated[
    Hello | Stats | CallRecordMessage | RegistrationMessage, Field(discriminator="type")
]
ControllerMessage = Annotated[
    Welcome | Refused | RegisterAll | Invite | Stop, Field(discriminator="type")
]

_CLIENT: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
_CONTROLLER: TypeAdapter[ControllerMessage] = TypeAdapter(ControllerMessage)


class MessageError(ValueError):
    """A WebSocket message that is not valid JSON of a known type; the text names the field."""


def _describe(exc: ValidationError) -> str:
    return describe(exc, whole="message")  # `call.caller: problem; ...`, inputs left out


def decode_client(text: str | bytes) -> ClientMessage:
    try:
        return _CLIENT.validate_json(text)
    except ValidationError as exc:
        raise MessageError(_describe(exc)) from None


def decode_controller(text: str | bytes) -> ControllerMessage:
    try:
        return _CONTROLLER.validate_json(text)
    except ValidationError as exc:
        raise MessageError(_describe(exc)) from None


def encode(message: _Message) -> str:
    return message.model_dump_json(exclude_none=True)


__all__ = [
    "CallId",
    "CallRecordMessage",
    "ClientMessage",
    "ControllerMessage",
    "Hello",
    "Invite",
    "MessageError",
    "PhoneId",
    "Refused",
    "RegisterAll",
    "RegistrationMessage",
    "Stats",
    "Stop",
    "Welcome",
    "decode_client",
    "decode_controller",
    "encode",
]
