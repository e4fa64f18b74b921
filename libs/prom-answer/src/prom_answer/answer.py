"""An /api/v1/query answer (HTTP status and decoded JSON body) read into labelled values.

Pure, so that answers recorded from a real Prometheus test it without a server; each caller
brings its own HTTP client (sync or async) and its own policy for the errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class PrometheusError(Exception):
    """A query that gave no vector: a non-2xx status or an error answer (with Prometheus'
    errorType and error), an answer that is not one, or (raised by a client) no answer."""


@dataclass(frozen=True)
class Series:
    """One element of an instant vector: its labels and value (None: NaN or infinite, as a
    p99 over no requests is)."""

    labels: dict[str, str]
    value: float | None


def _number(text: object) -> float | None:
    try:
        value = float(str(text))
    except ValueError:
        raise PrometheusError(f"not a sample value: {text!r}") from None
    return value if math.isfinite(value) else None


def parse_answer(status: int, body: Any) -> list[Series]:
    """The vector of an /api/v1/query answer; a scalar answer is a vector of one unlabelled
    element."""
    if not isinstance(body, dict):
        raise PrometheusError(f"HTTP {status}: the answer is not a JSON object")
    if body.get("status") != "success" or not 200 <= status < 300:
        kind = body.get("errorType", "error")
        reason = body.get("error", "no reason given")
        raise PrometheusError(f"HTTP {status}: {kind}: {reason}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise PrometheusError("the answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return [Series({}, _number(result[1]))]
    if kind != "vector" or not isinstance(result, list):
        raise PrometheusError(f"expected an instant vector, got {kind!r}")
    series = []
    for item in result:
        try:
            labels, (_, value) = item["metric"], item["value"]
            named = {str(k): str(v) for k, v in labels.items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise PrometheusError(f"not a vector element: {item!r}") from None
        series.append(Series(named, _number(value)))
    return series


def by_label(series: list[Series], label: str) -> dict[str, float | None]:
    """The values of a `by (label)` answer, by that label (elements without it are left out)."""
    return {s.labels[label]: s.value for s in series if label in s.labels}


def single(series: list[Series]) -> float | None:
    """The value of an answer of one element (none: no value; several: an error)."""
    if not series:
        return None
    if len(series) > 1:
        raise PrometheusError(f"expected one value, got {len(series)} series")
    return series[0].value
