"""Parsing single fields, shared by the readers and the validator's slow path."""

from __future__ import annotations

import math

from scenario_csv.errors import FieldError
from scenario_csv.ids import VALID_IDS, id_problem


def parse_id(text: str) -> str:
    if text in VALID_IDS:
        return text
    raise FieldError(id_problem(text))


# Above 2**53 a count or a time in ms is no longer exact as a float (durations, rates), and
# int() refuses more than 4300 digits with ValueError: such numbers are a field's defect.
MAX_COUNT = 2**53
_MAX_DIGITS = len(str(MAX_COUNT))


def parse_count(text: str, unit: str = "") -> int:
    """A non-negative whole number written in ASCII digits, at most MAX_COUNT."""
    what = f"a whole number of {unit}" if unit else "a whole number"
    if text.isascii() and text.isdigit():
        digits = text.lstrip("0") or "0"
        if len(digits) <= _MAX_DIGITS and (value := int(digits)) <= MAX_COUNT:
            return value
        raise FieldError(f"{text[:24]!r}{'...' if len(text) > 24 else ''} exceeds {MAX_COUNT}")
    if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
        raise FieldError(f"{text!r} is negative; expected {what} >= 0")
    raise FieldError(f"{text!r} is not {what}")


def parse_rate(text: str) -> float:
    """A finite non-negative decimal number (invites per second)."""
    try:
        value = float(text)
    except ValueError:
        raise FieldError(f"{text!r} is not a number") from None
    if text != text.strip() or not math.isfinite(value) or value < 0:
        raise FieldError(f"{text!r} is not a finite rate >= 0")
    return value
