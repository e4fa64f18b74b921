"""The pod's controller link against a real WebSocket server (the websockets library on
127.0.0.1) that plays the scenario controller badly: an answer to hello that is not a message,
hostile commands, then a restart. The pod runs on a real UDP socket; an invite it obeys shows
up as an INVITE datagram at the test's stand-in load balancer."""

from __future__ import annotations

import asyncio
import socket

from prometheus_client import CollectorRegistry, generate_latest
from websockets.asyncio.server import Server, ServerConnection, serve

from sip_client.controller_link import ControllerLink
from sip_client.runtime import PodRuntime
from sip_client.ua import PodConfig
from testbed_messages import Invite, Welcome, decode_client, encode


class StandInLoadBalancer(asyncio.DatagramProtocol):
    """Where the pod's requests go; records the Call-IDs of the INVITEs (never answered, so
    they are retransmitted: the first one is what counts)."""

    def __init__(self) -> None:
        self.invites: list[str] = []
        self.changed = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode(errors="replace")
        if text.startswith("INVITE "):
            call_id = next(
                line.split(":", 1)[1].strip()
                for line in text.split("\r\n")
                if line.lower().startswith("call-id:")
            )
            if call_id not in self.invites:
                self.invites.append(call_id)
                self.changed.set()

    async def seen(self, call_id: str) -> None:
        while call_id not in self.invites:
            self.changed.clear()
            await self.changed.wait()


class BadController:
    """Scripted sessions: each connection runs the next script."""

    def __init__(self) -> None:
        self.hellos: list[str] = []
        self.stats_after_restart = asyncio.Event()
        self.restarted = False

    async def handler(self, ws: ServerConnection) -> None:
        hello = decode_client(await ws.recv())
        self.hellos.append(hello.type)
        if len(self.hellos) == 1:  # an answer to hello that is not a message at all
            await ws.send('{"type": "welcome", "pod": 7}')
            await ws.wait_closed()
            return
        await ws.send(encode(Welcome(pod="00")))
        if not self.restarted:
            for frame in (
                "not json",
                '{"type": "invite", "caller": "x"}',
                b"\x00\xff binary",
                encode(Welcome(pod="00")),  # out of turn
                encode(Invite(caller="0500", callee="0100")),  # not this pod's phone
            ):
                await ws.send(frame)
            await ws.send(encode(Invite(caller="0000", callee="0100", call_id="before-restart")))
        else:
            await ws.send(encode(Invite(caller="0001", callee="0101", call_id="after-restart")))
        async for raw in ws:
            if self.restarted and decode_client(raw).type == "stats":
                self.stats_after_restart.set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connected(link: ControllerLink) -> bool:
    """Read through a call: mypy would carry an earlier `assert link.connected` over the
    awaits that change it."""
    return link.connected


def test_the_link_survives_invalid_messages_and_a_controller_restart():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lb = StandInLoadBalancer()
        lb_transport, _ = await loop.create_datagram_endpoint(
            lambda: lb, local_addr=("127.0.0.1", 0)
        )
        runtime = PodRuntime(
            PodConfig(
                pod="00",
                phones=2,
                local=("127.0.0.1", 0),
                outbound=lb_transport.get_extra_info("sockname"),
            ),
            records_limit=100,
            socket_buffer=65536,
        )
        await runtime.start()
        port = free_port()
        controller = BadController()
        registry = CollectorRegistry()
        link = ControllerLink(
            f"ws://127.0.0.1:{port}", runtime, 0.1, 0, registry, backoff=(0.05, 0.4)
        )
        server: Server = await serve(controller.handler, "127.0.0.1", port)
        task = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(lb.seen("before-restart"), 10)
            assert controller.hellos == ["hello", "hello"]  # it came back after the bad answer
            assert link.connected
            assert link.malformed_messages == 5  # bad welcome, non-JSON, invalid, binary, welcome
            assert link.rejected_commands == 1  # the other pod's caller

            server.close()  # the controller restarts
            await server.wait_closed()
            await asyncio.sleep(0.5)
            assert not connected(link)
            controller.restarted = True
            server = await serve(controller.handler, "127.0.0.1", port)
            await asyncio.wait_for(lb.seen("after-restart"), 10)
            assert lb.invites == ["before-restart", "after-restart"]
            await asyncio.wait_for(controller.stats_after_restart.wait(), 5)
            assert not task.done()
            assert connected(link)
        finally:
            task.cancel()
            server.close()
            await server.wait_closed()
            runtime.close()
            lb_transport.close()
        metrics = {
            line.split()[0]: float(line.split()[1])
            for line in generate_latest(registry).decode().splitlines()
            if line.startswith("sip_client_scenario_controller_")
        }
        assert metrics["sip_client_scenario_controller_messages_malformed_total"] == 5
        assert metrics["sip_client_scenario_controller_sessions_total"] == 2

    asyncio.run(main())
