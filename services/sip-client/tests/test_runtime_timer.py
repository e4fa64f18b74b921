"""The runtime arms the loop's timer on a grid, so timers due close together share a wake-up."""

from __future__ import annotations

import asyncio
import socket

from sip_client.runtime import _TIMER_GRAIN, PodRuntime
from sip_client.ua import PodConfig
from sip_core import Request, parse_message


def test_the_timer_is_armed_on_the_grid_never_early_and_still_fires():
    async def scenario() -> tuple[float, float, bytes, bytes]:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        runtime = PodRuntime(PodConfig(pod="00", phones=1, local=("127.0.0.1", 0),
                                       outbound=peer.getsockname()), 1000, 1 << 16)  # fmt: skip
        await runtime.start()
        loop = asyncio.get_running_loop()
        try:
            runtime.register_all()
            first = await asyncio.wait_for(loop.sock_recv(peer, 65535), 5)
            deadline = runtime.require_pod().get_timer()
            armed = runtime._timer_at
            assert deadline is not None
            assert armed is not None
            # unanswered: timer E retransmits the REGISTER on the loop's timer
            again = await asyncio.wait_for(loop.sock_recv(peer, 65535), 5)
            return deadline, armed, first, again
        finally:
            peer.close()
            runtime.close()

    deadline, armed, first, again = asyncio.run(scenario())
    assert deadline <= armed < deadline + _TIMER_GRAIN + 1e-9
    assert abs(armed / _TIMER_GRAIN - round(armed / _TIMER_GRAIN)) < 1e-6
    assert isinstance(parse_message(first), Request)
    assert again == first  # a retransmission, sent by the timer
