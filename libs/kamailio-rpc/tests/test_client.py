"""The clients' requests as bytes on the wire (httpx.MockTransport), with and without a token."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from kamailio_rpc import AsyncKamailioRpc, KamailioRpc, RpcTransportError

TOKEN = "k" * 20
URL = "http://127.0.0.1:8060/RPC"


class Recorder:
    def __init__(self, status: int = 200) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, text="Forbidden")
        sent = json.loads(request.content)
        return httpx.Response(200, json={"jsonrpc": "2.0", "result": 42, "id": sent["id"]})


def test_sync_client_sends_the_bearer_header():
    recorder = Recorder()
    rpc = KamailioRpc(URL, httpx.Client(transport=httpx.MockTransport(recorder)), token=TOKEN)
    assert rpc.call("core.uptime") == 42
    (request,) = recorder.requests
    assert request.headers.get_list("authorization") == [f"Bearer {TOKEN}"]
    assert json.loads(request.content)["method"] == "core.uptime"


def test_async_client_sends_the_bearer_header_on_every_call():
    recorder = Recorder()

    async def calls() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
            rpc = AsyncKamailioRpc(URL, http, token=TOKEN)
            await rpc.call("core.uptime")
            await rpc.call("dispatcher.list")

    anyio.run(calls)
    assert [r.headers.get("authorization") for r in recorder.requests] == [f"Bearer {TOKEN}"] * 2


@pytest.mark.parametrize("token", [None, ""])
def test_without_a_token_no_authorization_header(token):
    recorder = Recorder()
    rpc = KamailioRpc(URL, httpx.Client(transport=httpx.MockTransport(recorder)), token=token)
    rpc.call("core.uptime")
    assert "authorization" not in recorder.requests[0].headers


def test_a_token_that_could_split_a_header_is_refused_before_any_request():
    with pytest.raises(ValueError, match="whitespace"):
        KamailioRpc(
            URL,
            httpx.Client(transport=httpx.MockTransport(Recorder())),
            token="a" * 16 + "\r\nX: y",
        )


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_by_kamailio_says_so(status):
    rpc = KamailioRpc(URL, httpx.Client(transport=httpx.MockTransport(Recorder(status))))
    with pytest.raises(RpcTransportError, match=f"HTTP {status}, .* refused the request"):
        rpc.call("dispatcher.reload")
