"""Errors, split as h11 does: the peer sent something wrong, or our own code misused the API."""


class SipError(Exception):
    pass


class RemoteProtocolError(SipError):
    """The bytes from the network break the protocol (a peer's fault: answer 400 or drop)."""


class ParseError(RemoteProtocolError):
    """A message could not be parsed; `reason` names the line or field at fault."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChallengeError(ParseError):
    """A 401/407 challenge that cannot be answered: not Digest, no realm or nonce, an algorithm
    not implemented (AKAv1-MD5, SHA-1), control characters in a value. `reason` says which; a
    UA fails that registration or call with it."""


class UnsupportedVersion(ParseError):
    """A SIP version other than 2.0 (a server answers 505)."""


class LocalProtocolError(SipError):
    """Our own code asked for something the protocol does not allow in this state."""
