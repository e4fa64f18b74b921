import pytest

from testbed_messages import (
    CallRecordMessage,
    Hello,
    Invite,
    MessageError,
    Stats,
    decode_client,
    decode_controller,
    encode,
)


def test_round_trips() -> None:
    for message in (
        Hello(pod="07", phones=100, version="0.1.0"),
        Stats(pod="07", at=1.5, registered=99, calls_started=3),
        CallRecordMessage(
            call_id="c", caller="0700", callee="0800", outcome="succeeded", invite_at=1.0, ok_at=1.1
        ),
    ):
        assert decode_client(encode(message)) == message
    invite = Invite(caller="0700", callee="0800", hold_ms=2000, seq=5)
    assert decode_controller(encode(invite)) == invite
    assert '"call_id"' not in encode(invite)  # absent optional fields are not sent


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"type": "hello", "pod": "7", "phones": 10}', "pod"),  # the paper's padding bug
        ('{"type": "hello", "pod": "07", "phones": 101}', "phones"),
        ('{"type": "nonsense"}', "type"),
        ("not json", "json"),
    ],
)
def test_bad_client_messages_name_the_field(text: str, fragment: str) -> None:
    with pytest.raises(MessageError) as info:
        decode_client(text)
    assert fragment in str(info.value).lower()


def test_bad_invite_is_refused() -> None:
    with pytest.raises(MessageError, match="caller"):
        decode_controller('{"type": "invite", "caller": "700", "callee": "0800"}')
    with pytest.raises(MessageError, match="hold_ms"):
        decode_controller('{"type": "invite", "caller": "0700", "callee": "0800", "hold_ms": -1}')


def test_a_validators_message_is_given_as_written() -> None:
    with pytest.raises(MessageError) as info:
        decode_controller(
            '{"type": "invite", "caller": "0700", "callee": "0800", "call_id": "a b"}'
        )
    assert str(info.value).startswith("invite.call_id: not a Call-ID: word[@word]")
    with pytest.raises(MessageError, match=r"^message: Invalid JSON"):
        decode_client("not json")
