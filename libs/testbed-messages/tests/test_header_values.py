"""Values that end up in SIP headers are checked where they enter: the WebSocket `invite`."""

import json

import pytest

from testbed_messages import Invite, MessageError, decode_controller, encode


@pytest.mark.parametrize(
    "call_id",
    ["x\r\nX-Injected: 1", "x\ny", "a b", "", "a@b@c", "\u00fcber", "x" * 257],
)
def test_an_invite_call_id_outside_the_call_id_grammar_is_refused(call_id: str) -> None:
    message = {"type": "invite", "caller": "0700", "callee": "0800", "call_id": call_id}
    with pytest.raises(MessageError, match=r"^invite\.call_id: "):
        decode_controller(json.dumps(message))


@pytest.mark.parametrize("call_id", ["run-3.row-17@pod07", "a84b4c76e66710@pc33.atlanta.com"])
def test_call_ids_of_the_grammar_pass(call_id: str) -> None:
    invite = Invite(caller="0700", callee="0800", call_id=call_id)
    assert decode_controller(encode(invite)) == invite
