"""Kubernetes quantities (testbed.quantity): the HPA's targets and the proxies' CPU limits."""

from __future__ import annotations

import re

import pytest

from testbed.quantity import cpu_millicores, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", 0.25),
        ("1.5", 1.5),
        ("2k", 2000.0),
        ("128Mi", 128 * 2**20),
        ("1Gi", 2**30),
        ("500M", 5e8),
        ("100u", 1e-4),
        (" 3 ", 3.0),
        ("1e3", 1000.0),
        (4, 4.0),
        (0.5, 0.5),
    ],
)
def test_quantities(text: str | float, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "m", "lots", "1.5x", "128MiB", "inf", "nan", "1 2"])
def test_not_a_quantity_is_one_line_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=rf"quantity {re.escape(repr(text))} is not like 250m"):
        parse_quantity(text)


def test_cpu_limits_take_plain_and_milli_amounts_only() -> None:
    assert [cpu_millicores(t) for t in ("30m", "0.5", "2", "1.5m")] == [30, 500, 2000, 2]
    for text in ("1k", "128Mi", "1e3"):  # quantities, but not CPU limits the testbed takes
        with pytest.raises(ValueError, match=f"CPU quantity '{text}' is not like 30m"):
            cpu_millicores(text)
    with pytest.raises(ValueError, match=r"CPU quantity '0\.0001' is below 1m"):
        cpu_millicores("0.0001")
