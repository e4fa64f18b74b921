"""A SYNTHETIC day in the layout of the Milano CDR files, for the Milano reader's tests and
csvgen's packaged fixture (`python -m csvgen.synthetic` writes it).

It is not real data: it imitates the layout of the Dataverse files (Barlacchi et al. 2015).
One local day (2013-11-04, CET), three squares, several country codes per square and slot
(Italy carries most of the activity), empty fields where a country had no activity of a kind,
and a daily shape with a night low, a late-morning and an early-evening peak. Seeded, so the
lines are the same byte for byte on every run.
"""

from __future__ import annotations

import math
import random

DAY_START_MS = 1_383_519_600_000  # 2013-11-04 00:00 CET = 2013-11-03 23:00 UTC
SLOT_MS = 600_000
SQUARES = {4259: 60.0, 4456: 25.0, 5060: 40.0}  # square id -> calls per 10 min at the peak
# country code -> (share of the square's activity, chance of a row in a slot)
COUNTRIES = {39: (0.9, 1.0), 33: (0.04, 0.5), 49: (0.03, 0.4), 44: (0.02, 0.3), 86: (0.01, 0.2)}
SEED = 20131104


def daily_shape(hour: float) -> float:
    """Relative call activity over a day: night low, peaks near 11:00 and 17:30."""
    return (
        0.04
        + 0.9 * math.exp(-(((hour - 11.0) / 2.2) ** 2))
        + 0.8 * math.exp(-(((hour - 17.5) / 2.5) ** 2))
        + 0.25 * math.exp(-(((hour - 21.0) / 1.5) ** 2))
    )


def _value(rng: random.Random, mean: float) -> str:
    """A noisy activity as the real files write it, or '' (no activity) when it rounds to 0."""
    value = mean * (0.7 + 0.6 * rng.random())
    return f"{value:.10g}" if value >= 0.001 else ""


def synthetic_lines() -> list[str]:
    rng = random.Random(SEED)
    lines = []
    for square, peak_calls in SQUARES.items():
        for slot in range(144):
            start = DAY_START_MS + slot * SLOT_MS
            calls = peak_calls * daily_shape(slot / 6)
            for country, (share, chance) in COUNTRIES.items():
                if rng.random() > chance:
                    continue
                mean = calls * share
                # foreign numbers often have no calls in a slot, only SMS or internet
                has_calls = country == 39 or rng.random() < 0.5
                fields = [
                    str(square),
                    str(start),
                    str(country),
                    _value(rng, mean * 1.2),  # sms-in
                    _value(rng, mean * 0.9),  # sms-out
                    _value(rng, mean * 0.55) if has_calls else "",  # call-in
                    _value(rng, mean * 0.45) if has_calls else "",  # call-out
                    _value(rng, mean * 8.0),  # internet
                ]
                lines.append("\t".join(fields) + "\n")
    return lines
