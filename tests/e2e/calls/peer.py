"""One WebRTC peer for the calls e2e test, run in its own process:

    python -m tests.e2e.calls.peer <base_url> <token> caller|callee <sdp|trickle> [callee_id]

It is a python-socketio client of Hubbub and an aiortc peer. Everything WebRTC needs travels
through Hubbub's call events: the caller invites, waits for call:accepted, opens a data
channel and sends its offer; the callee accepts call:incoming and answers. Mode `sdp` sends
the candidates inside the SDP (non-trickle); `trickle` strips them from the SDP and sends each
one as a call:signal of kind "ice", then an empty candidate for end-of-candidates. Once the
channel is open each side sends one message and waits for the other's. Lines of JSON on
stdout report progress: {"event": "ready"} once connected, {"event": "done", ...} at the end.

ICE stays on loopback: no STUN server (RTCConfiguration(iceServers=[])) and aioice's host
addresses are restricted to 127.0.0.1 (by default it skips loopback and offers every other
interface).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aioice.ice
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcicetransport import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

DEADLINE = 30.0


def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"]


aioice.ice.get_host_addresses = loopback_only


def report(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def split_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """The SDP without its candidate lines, and those candidates as trickle payloads."""
    kept, candidates = [], []
    mid: str | None = None
    index = -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:"):]
        if line.startswith("a=candidate:"):
            candidates.append({"candidate": line[2:], "sdpMid": mid, "sdpMLineIndex": index})
            continue
        if line.startswith("a=end-of-candidates"):
            continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates


class Peer:
    def __init__(self, role: str, mode: str) -> None:
        self.role = role
        self.mode = mode
        self.sio = socketio.AsyncClient(reconnection=False)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.call_id: str | None = None
        self.other_id: str | None = None
        self.signals: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.accepted = asyncio.Event()
        self.received: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.sent_candidates = 0
        self.added_candidates = 0
        self.remote_sdp_candidates = 0

    async def emit(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        ack = await self.sio.call(event, data, timeout=10)
        if not ack.get("ok"):
            raise RuntimeError(f"{event} refused: {ack}")
        return ack

    async def signal(self, kind: str, payload: dict[str, Any]) -> None:
        await self.emit("call:signal", {"call_id": self.call_id, "to_user_id": self.other_id,
                                        "kind": kind, "payload": payload})

    async def send_description(self) -> None:
        description = self.pc.localDescription
        sdp = description.sdp
        candidates: list[dict[str, Any]] = []
        if self.mode == "trickle":
            sdp, candidates = split_candidates(sdp)
        await self.signal(description.type, {"type": description.type, "sdp": sdp})
        for candidate in candidates:
            await self.signal("ice", candidate)
            self.sent_candidates += 1
        if self.mode == "trickle":
            await self.signal("ice", {"candidate": "", "sdpMid": None, "sdpMLineIndex": 0})

    async def handle_signals(self) -> None:
        # One at a time, in arrival order: a candidate must never overtake its description.
        while True:
            signal = await self.signals.get()
            payload = signal["payload"]
            if signal["kind"] in ("offer", "answer"):
                self.remote_sdp_candidates = payload["sdp"].count("a=candidate:")
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=payload["sdp"], type=payload["type"]))
                if signal["kind"] == "offer":
                    await self.pc.setLocalDescription(await self.pc.createAnswer())
                    await self.send_description()
            elif not payload.get("candidate"):
                await self.pc.addIceCandidate(None)
            else:
                candidate: RTCIceCandidate = candidate_from_sdp(
                    payload["candidate"].removeprefix("candidate:"))
                candidate.sdpMid = payload.get("sdpMid")
                candidate.sdpMLineIndex = payload.get("sdpMLineIndex")
                await self.pc.addIceCandidate(candidate)
                self.added_candidates += 1

    def watch_channel(self, channel: Any) -> None:
        @channel.on("message")
        def on_message(message: str) -> None:
            if not self.received.done():
                self.received.set_result(message)

    async def run(self, base_url: str, token: str, callee_id: str | None) -> None:
        sio = self.sio

        @sio.on("call:incoming")
        async def incoming(data: dict[str, Any]) -> None:
            if self.role == "callee" and self.call_id is None:
                self.call_id, self.other_id = data["call_id"], data["from_user_id"]
                await self.emit("call:accept", {"call_id": self.call_id})

        @sio.on("call:accepted")
        async def accepted(data: dict[str, Any]) -> None:
            self.accepted.set()

        @sio.on("call:signal")
        async def on_signal(data: dict[str, Any]) -> None:
            if data["call_id"] == self.call_id and data["from_user_id"] == self.other_id:
                self.signals.put_nowait(data)

        opened = asyncio.Event()
        ended = asyncio.Event()
        channels: list[Any] = []

        @sio.on("call:ended")
        async def on_ended(data: dict[str, Any]) -> None:
            ended.set()

        @self.pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            channels.append(channel)
            self.watch_channel(channel)
            if channel.readyState == "open":
                opened.set()
            else:
                channel.on("open", opened.set)

        await sio.connect(base_url, auth={"token": token}, transports=["websocket"],
                          wait_timeout=10)
        report(event="ready")
        consumer = asyncio.create_task(self.handle_signals())
        try:
            if self.role == "caller":
                assert callee_id is not None
                self.other_id = callee_id
                ack = await self.emit("call:invite", {"user_ids": [callee_id],
                                                      "media": "audio"})
                self.call_id = ack["call_id"]
                await self.accepted.wait()
                channel = self.pc.createDataChannel("chat")
                channels.append(channel)
                self.watch_channel(channel)
                channel.on("open", opened.set)
                await self.pc.setLocalDescription(await self.pc.createOffer())
                await self.send_description()
                await opened.wait()
                channel.send("hello from the caller")
                message = await self.received  # the callee's reply
            else:
                message = await self.received  # the caller's hello
                await opened.wait()
                channels[0].send("hello from the callee")
            report(event="done", received=message, call_id=self.call_id,
                   sent_candidates=self.sent_candidates, added_candidates=self.added_candidates,
                   remote_sdp_candidates=self.remote_sdp_candidates,
                   local_hosts=sorted({line.split()[4] for line in
                                       self.pc.localDescription.sdp.splitlines()
                                       if line.startswith("a=candidate:")}))
            if self.role == "caller":
                await self.emit("call:hangup", {"call_id": self.call_id})
            else:  # keep the transport up until the caller has read the reply and hung up
                await ended.wait()
        finally:
            consumer.cancel()
            await self.pc.close()
            await sio.disconnect()


async def main(argv: list[str]) -> None:
    base_url, token, role, mode = argv[:4]
    callee_id = argv[4] if len(argv) > 4 else None
    async with asyncio.timeout(DEADLINE):
        await Peer(role, mode).run(base_url, token, callee_id)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
