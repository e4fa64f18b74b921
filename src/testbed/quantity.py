"""Kubernetes resource quantities ("250m", "1.5", "2k", "128Mi"), pure: the HPA's metric
targets (testbed.autoscale.hpa) and the proxies' CPU limits (testbed.local.cgroups) read them
with the same suffix rules."""

from __future__ import annotations

import re

# decimal SI suffixes and the binary ones (memory), as Kubernetes' resource.Quantity has them
_FACTORS: dict[str, float] = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY = re.compile(
    r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)\s*$"
)
# a CPU limit as the testbed takes it: a plain or millicore amount, nothing else
_CPU = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m?)\s*$")


def parse_quantity(value: str | float) -> float:
    """A quantity as a number: '10m' -> 0.01, '1500m' -> 1.5, '2' -> 2, '1k' -> 1000,
    '128Mi' -> 134217728; numbers pass through."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"quantity {value!r} is not like 250m, 1.5, 2k or 128Mi")
    return float(match.group(1)) * _FACTORS[match.group(2)]


def cpu_millicores(text: str) -> int:
    """A CPU limit in millicores: '30m' -> 30, '0.5' -> 500, '2' -> 2000 (at least 1m)."""
    match = _CPU.match(text)
    if not match:
        raise ValueError(f"CPU quantity '{text}' is not like 30m, 250m, 0.5 or 2")
    number = float(match.group(1))  # exact for millicores: no detour through 1e-3
    millicores = round(number if match.group(2) else number * 1000)
    if millicores < 1:
        raise ValueError(f"CPU quantity '{text}' is below 1m")
    return millicores
