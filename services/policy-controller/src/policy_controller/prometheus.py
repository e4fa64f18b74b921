"""Prometheus' HTTP API, thin: instant queries (GET /api/v1/query); their answers are read by
the `prom_answer` library, which is pure, so that recorded answers test it without a server."""

from __future__ import annotations

import httpx

from prom_answer import PrometheusError, Series, by_label, parse_answer, single

# the answer's reading is the library's, shared with the local testbed; re-exported for callers
__all__ = ["PrometheusClient", "PrometheusError", "Series", "by_label", "parse_answer", "single"]


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
