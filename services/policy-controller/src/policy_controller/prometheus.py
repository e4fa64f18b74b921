"""Prometheus' HTTP API, thin: instant queries (GET /api/v1/query) and the parsing of their
answers, which is pure (`parse_answer`) so that recorded answers test it without a server."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx


class PrometheusError(Exception):
    """A query that gave no vector: unreachable, a non-2xx status (with Prometheus' errorType
    and error), or an answer that is not one."""


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
    """The vector of an /api/v1/query answer (status code and decoded JSON body); a scalar
    answer is a vector of one unlabelled element."""
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
        except (KeyError, TypeError, ValueError):
            raise PrometheusError(f"not a vector element: {item!r}") from None
        series.append(Series({str(k): str(v) for k, v in labels.items()}, _number(value)))
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


class PrometheusClient:
    """Instant queries against one Prometheus. `transport` replaces the network (tests)."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, transport=transport, trust_env=False
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def query(self, expr: str, at: float | None = None) -> list[Series]:
        """The instant vector of `expr` at Unix time `at` (None: Prometheus' now)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            response = await self._client.get("/api/v1/query", params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"{self.base_url} unreachable: {exc!r}") from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"HTTP {response.status_code}: not JSON ({response.text[:100]!r})"
            ) from None
        return parse_answer(response.status_code, body)
