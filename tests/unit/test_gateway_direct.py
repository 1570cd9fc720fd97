"""Direct websocket writes (server/gateway/direct.py): the frames are what aiohttp's own writer
produces, and a packet goes direct only when that keeps the socket's order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp._websocket.writer import WebSocketWriter
from aiohttp.http_websocket import WSMsgType

from server.gateway.direct import DirectLinks, message_frame, text_frame


@dataclass
class FakeTransport:
    written: list[bytes] = field(default_factory=list)
    closing: bool = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing


@dataclass
class FakeProtocol:
    writing_paused: bool = False
    _paused: bool = False


@dataclass
class FakeSocket:
    upgraded: bool = True
    upgrading: bool = False
    closing: bool = False
    closed: bool = False
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
async def test_frames_match_aiohttps_writer(size: int) -> None:
    payload = ("x" * size).encode()
    transport = FakeTransport()
    writer = WebSocketWriter(FakeProtocol(), transport)  # type: ignore[arg-type]
    await writer.send_frame(payload, WSMsgType.TEXT)
    assert text_frame(payload) == b"".join(transport.written)


def test_a_message_frame_carries_the_engineio_message_type() -> None:
    assert message_frame('2["hi",{"a":"é"}]') == text_frame('42["hi",{"a":"é"}]'.encode())


def link(**socket: Any) -> tuple[DirectLinks, FakeSocket, FakeTransport, FakeProtocol]:
    links, sock, transport, protocol = DirectLinks(), FakeSocket(**socket), FakeTransport(), \
        FakeProtocol()
    links.add("e1", sock, transport, protocol)
    return links, sock, transport, protocol


async def test_writes_go_direct_to_an_idle_websocket() -> None:
    links, _, transport, _ = link()
    assert links.write("e1", b"frame") is True
    assert transport.written == [b"frame"]
    assert (links.direct, links.queued) == (1, 0)


async def test_packets_waiting_in_engineios_queue_keep_their_place() -> None:
    links, sock, transport, _ = link()
    sock.queue.put_nowait("an earlier packet")
    assert links.write("e1", b"frame") is False
    assert transport.written == []


@pytest.mark.parametrize("state", [{"upgraded": False}, {"upgrading": True},
                                   {"closing": True}, {"closed": True}])
async def test_sockets_not_plainly_on_websocket_use_the_queue(state: dict[str, bool]) -> None:
    links, _, transport, _ = link(**state)
    assert links.write("e1", b"frame") is False
    assert transport.written == []


async def test_a_paused_or_closing_transport_uses_the_queue() -> None:
    links, _, transport, protocol = link()
    protocol.writing_paused = True
    assert links.write("e1", b"frame") is False
    protocol.writing_paused = False
    transport.closing = True
    assert links.write("e1", b"frame") is False
    assert transport.written == []


async def test_unknown_or_discarded_sockets_use_the_queue() -> None:
    links, _, transport, _ = link()
    links.discard("e1")
    assert links.write("e1", b"frame") is False
    assert links.write("nobody", b"frame") is False
    assert len(links) == 0 and transport.written == []


async def test_a_socket_writing_its_queue_keeps_its_turn() -> None:
    links, sock, transport, _ = link()
    sock.writing = True  # type: ignore[attr-defined]  # GatewaySocket's flag
    assert links.write("e1", b"frame") is False
    assert transport.written == []
