"""Dialogs (RFC 3261 12): the state two UAs share from an INVITE's 2xx until the BYE."""

from __future__ import annotations

from dataclasses import dataclass, field

from sip_core.errors import LocalProtocolError
from sip_core.headers import Headers
from sip_core.message import Request, Response
from sip_core.syntax import CSeq, NameAddr, Via


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    local_cseq: int
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    remote_cseq: int | None = None

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, invite: Request, response: Response) -> Dialog:
        """The caller's dialog, from the INVITE it sent and a 2xx (or 1xx with a to-tag)."""
        remote_tag = response.to.tag
        local_tag = invite.from_.tag
        if not remote_tag or not local_tag or not response.contact:
            raise LocalProtocolError("a dialog needs both tags and a Contact in the response")
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=invite.from_.uri,
            remote_uri=invite.to.uri,
            local_cseq=invite.cseq.number,
            remote_target=response.contact[0].uri,
            route_set=[str(r) for r in reversed(response.record_route)],
        )

    @classmethod
    def from_uas(cls, invite: Request, local_tag: str, local_cseq: int = 1) -> Dialog:
        """The callee's dialog, from the INVITE it received and the to-tag it answers with."""
        remote_tag = invite.from_.tag
        if not remote_tag or not invite.contact:
            raise LocalProtocolError("the INVITE has no From tag or no Contact")
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=invite.to.uri,
            remote_uri=invite.from_.uri,
            local_cseq=local_cseq,
            remote_target=invite.contact[0].uri,
            route_set=[str(r) for r in invite.record_route],
            remote_cseq=invite.cseq.number,
        )

    def _headers(self, via: Via, cseq: CSeq, extra: tuple[tuple[str, str], ...]) -> Headers:
        fields = [("Via", str(via)), ("Max-Forwards", "70")]
        fields += [("Route", route) for route in self.route_set]
        fields += [
            ("From", str(NameAddr(self.local_uri, params={"tag": self.local_tag}))),
            ("To", str(NameAddr(self.remote_uri, params={"tag": self.remote_tag}))),
            ("Call-ID", self.call_id),
            ("CSeq", str(cseq)),
            *extra,
        ]
        return Headers(fields)

    def request(self, method: str, via: Via, extra: tuple[tuple[str, str], ...] = ()) -> Request:
        """A new in-dialog request (BYE, re-INVITE ...) to the remote target; CSeq goes up."""
        if method == "ACK":
            raise LocalProtocolError("use Dialog.ack for ACK: it reuses the INVITE's CSeq")
        self.local_cseq += 1
        cseq = CSeq(self.local_cseq, method)
        request = Request(method, self.remote_target, self._headers(via, cseq, extra))
        request.known(via, cseq)
        return request

    def ack(self, invite_cseq: int, via: Via) -> Request:
        """The ACK for a 2xx to the INVITE with CSeq `invite_cseq` (a transaction of its own)."""
        cseq = CSeq(invite_cseq, "ACK")
        ack = Request("ACK", self.remote_target, self._headers(via, cseq, ()))
        ack.known(via, cseq)
        return ack

    def matches(self, message: Request | Response) -> bool:
        """Whether an in-dialog request received belongs to this dialog."""
        if message.call_id != self.call_id:
            return False
        if isinstance(message, Request):
            return message.to.tag == self.local_tag and message.from_.tag == self.remote_tag
        return message.from_.tag == self.local_tag and message.to.tag == self.remote_tag
