"""Thin httpx adapters around the protocol functions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from api_token import bearer
from kamailio_rpc.protocol import (
    DispatcherTarget,
    RpcError,
    RpcTransportError,
    TmStats,
    build_request,
    parse_dispatcher_list,
    parse_response,
    parse_statistics,
    parse_tm_stats,
    parse_ul_dump_aors,
)

# dispatcher refuses reloads closer together than its reload_delta
_RELOAD_RETRY_SECONDS = 0.25
_RELOAD_DEADLINE_SECONDS = 10.0


def _is_ongoing_reload(exc: RpcError) -> bool:
    return exc.code == 500 and "ongoing reload" in exc.message.lower()


def _decode(method: str, response: httpx.Response) -> Any:
    if response.status_code in (401, 403):
        # Kamailio's /RPC refuses before jsonrpcs runs: say so instead of "not JSON"
        raise RpcTransportError(
            f"{method}: HTTP {response.status_code}, {response.url} refused the request "
            "(the client's token must be Kamailio's API_TOKEN)"
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise RpcTransportError(
            f"{method}: HTTP {response.status_code} with a body that is not JSON"
        ) from exc
    return parse_response(method, body)


def _headers(token: str | None) -> dict[str, str]:
    # validated by bearer(): a token with CR/LF or spaces never reaches a header line
    return bearer(token) if token else {}


class AsyncKamailioRpc:
    """``token``: Kamailio's API_TOKEN, sent as ``Authorization: Bearer`` on every call."""

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        timeout: float = 5.0,
        *,
        token: str | None = None,
    ) -> None:
        self.url = url
        self._client = client
        self._timeout = timeout
        self._headers = _headers(token)

    async def call(self, method: str, *params: Any) -> Any:
        try:
            response = await self._client.post(
                self.url,
                json=build_request(method, list(params)),
                headers=self._headers,
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise RpcTransportError(f"{method}: {self.url} unreachable: {exc!r}") from exc
        return _decode(method, response)

    async def dispatcher_reload(self) -> None:
        deadline = time.monotonic() + _RELOAD_DEADLINE_SECONDS
        while True:
            try:
                await self.call("dispatcher.reload")
                return
            except RpcError as exc:
                if not _is_ongoing_reload(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(_RELOAD_RETRY_SECONDS)

    async def dispatcher_list(self) -> list[DispatcherTarget]:
        return parse_dispatcher_list(await self.call("dispatcher.list"))

    async def registered_aors(self) -> list[str]:
        return parse_ul_dump_aors(await self.call("ul.dump", "brief"))

    async def tm_stats(self) -> TmStats:
        return parse_tm_stats(await self.call("tm.stats"))

    async def statistics(self, group: str = "all") -> dict[str, int]:
        return parse_statistics(await self.call("stats.get_statistics", group))


class KamailioRpc:
    """Blocking twin of AsyncKamailioRpc for the CLI and tests."""

    def __init__(
        self,
        url: str,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
        *,
        token: str | None = None,
    ) -> None:
        self.url = url
        self._client = client or httpx.Client()
        self._timeout = timeout
        self._headers = _headers(token)

    def call(self, method: str, *params: Any) -> Any:
        try:
            response = self._client.post(
                self.url,
                json=build_request(method, list(params)),
                headers=self._headers,
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise RpcTransportError(f"{method}: {self.url} unreachable: {exc!r}") from exc
        return _decode(method, response)

    def dispatcher_list(self) -> list[DispatcherTarget]:
        return parse_dispatcher_list(self.call("dispatcher.list"))

    def registered_aors(self) -> list[str]:
        return parse_ul_dump_aors(self.call("ul.dump", "brief"))

    def tm_stats(self) -> TmStats:
        return parse_tm_stats(self.call("tm.stats"))

    def statistics(self, group: str = "all") -> dict[str, int]:
        return parse_statistics(self.call("stats.get_statistics", group))
