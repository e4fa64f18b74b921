"""Phone IDs `PPNN`: PP is the client pod (00-99), NN the phone in that pod (00-99).

An even pod calls the next odd pod with the same phone number (4600 -> 4700). The padding is
part of the format: the paper's first bug wrote pod 7 as `700`, which no phone answers to.
"""

from __future__ import annotations

PODS = 100
PHONES_PER_POD = 100
ID_DIGITS = 4


def phone_id(pod: int, phone: int) -> str:
    if not (0 <= pod < PODS and 0 <= phone < PHONES_PER_POD):
        raise ValueError(f"pod {pod} phone {phone}: pods and phones are numbered 0-99")
    return f"{pod:02d}{phone:02d}"


# lookups for the validator's hot loop: set membership is much cheaper than parsing
VALID_IDS: frozenset[str] = frozenset(
    phone_id(pod, phone) for pod in range(PODS) for phone in range(PHONES_PER_POD)
)
PARTNERS: dict[str, str] = {
    phone_id(pod, phone): phone_id(pod + 1, phone)
    for pod in range(0, PODS, 2)
    for phone in range(PHONES_PER_POD)
}


def pod_of(valid_id: str) -> int:
    return int(valid_id[:2])


def phone_of(valid_id: str) -> int:
    return int(valid_id[2:])


def partner_of(caller: str) -> str | None:
    """The callee the convention pairs with `caller`; None when the caller sits in an odd pod."""
    return PARTNERS.get(caller)


def id_problem(text: str) -> str:
    """Why `text` is not a phone ID, in words (for texts not in VALID_IDS)."""
    if not text:
        return "is empty; phone IDs have 4 digits PPNN (pod, phone)"
    if text.isascii() and text.isdigit():
        if len(text) < ID_DIGITS:
            padded = text.zfill(ID_DIGITS)
            return (
                f"{text!r} is not zero-padded: phone IDs have 4 digits PPNN, "
                f"so pod {padded[:2]} phone {padded[2:]} is {padded!r}"
            )
        return f"{text!r} has {len(text)} digits; phone IDs have 4 digits PPNN (pod, phone)"
    return f"{text!r} is not a phone ID; phone IDs have 4 digits PPNN (pod, phone)"


def pairing_problem(caller: str, callee: str) -> str | None:
    """Why a (valid) caller/callee pair breaks the even-to-odd convention, or None."""
    expected = PARTNERS.get(caller)
    if expected is None:
        return f"caller {caller} is in odd pod {caller[:2]}; callers are in even pods"
    if callee != expected:
        return (
            f"{callee} is not the partner of caller {caller}: an even pod calls the next odd "
            f"pod with the same phone, so the callee is {expected}"
        )
    return None
