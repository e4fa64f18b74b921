"""The two scenario CSV layouts, their headers, and how numbers are written in them."""

from __future__ import annotations

import math
from enum import StrEnum

SEPARATOR = ";"
TEN_MINUTES_MS = 600_000


class ScenarioFormat(StrEnum):
    MAIN = "main"
    TEN_MINUTE = "ten_minute"


MAIN_FIELDS = (
    "caller",
    "callee",
    "wait_before_next_in_ms",
    "seconds_since_start",
    "arrival_rate_in_s",
)
# the paper's Milano-derived file (its figure 3.14)
TEN_MINUTE_FIELDS = (
    "ten_minute",
    "milliseconds",
    "calls_in_ten_minutes",
    "caller",
    "callee",
)
FIELDS: dict[ScenarioFormat, tuple[str, ...]] = {
    ScenarioFormat.MAIN: MAIN_FIELDS,
    ScenarioFormat.TEN_MINUTE: TEN_MINUTE_FIELDS,
}
HEADERS: dict[ScenarioFormat, str] = {fmt: SEPARATOR.join(f) for fmt, f in FIELDS.items()}


def detect_format(header: str) -> ScenarioFormat | None:
    """The format a header line announces (a UTF-8 BOM and the line end are ignored)."""
    text = header.lstrip("\ufeff").rstrip("\r\n").strip()
    for fmt, expected in HEADERS.items():
        if text == expected:
            return fmt
    return None


def format_rate(rate: float) -> str:
    """A rate with 3 decimals, or 3 significant digits below 0.1, without trailing zeros.

    Small rates keep their significant digits so that a second with a row never declares 0.
    """
    if rate <= 0:
        return "0"
    decimals = min(12, max(3, 2 - math.floor(math.log10(rate))))
    text = f"{rate:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
