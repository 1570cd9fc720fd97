"""Two aiortc peers, each in its own process and each a Socket.IO client of `hubbub serve`,
negotiate a WebRTC data channel through Hubbub's call signaling alone (offer, answer and ICE
via call:signal) over loopback, then exchange a message each way. Both ways of carrying ICE
candidates: inside the SDP, and trickled one by one as `ice` signals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.live import signup
from tests.support.server import HubbubProcess

pytest.importorskip("aiortc")

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 45.0


class PeerProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, *args: str) -> PeerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.e2e.calls.peer", *args, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(process)

    async def until(self, event: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                stderr = await self.process.stderr.read() if self.process.stderr else b""
                raise AssertionError(f"peer exited before {event!r}: {stderr.decode()[-3000:]}")
            report = json.loads(line)
            self.lines.append(report)
            if report.get("event") == event:
                return report

    async def finish(self) -> int:
        return await self.process.wait()

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


@pytest.mark.parametrize("mode", ["sdp", "trickle"])
async def test_two_aiortc_peers_open_a_data_channel_through_hubbub(
        hubbub: HubbubProcess, http: aiohttp.ClientSession, mode: str) -> None:
    ann, bob = await signup(http, "rtc_a"), await signup(http, "rtc_b")
    peers: list[PeerProcess] = []
    try:
        async with asyncio.timeout(DEADLINE):
            callee = await PeerProcess.start(hubbub.base_url, bob.token, "callee", mode)
            peers.append(callee)
            await callee.until("ready")  # connected: the invite will reach it
            caller = await PeerProcess.start(hubbub.base_url, ann.token, "caller", mode, bob.id)
            peers.append(caller)
            caller_done, callee_done = await asyncio.gather(caller.until("done"),
                                                            callee.until("done"))
            assert await caller.finish() == 0 and await callee.finish() == 0
    finally:
        for peer in peers:
            peer.kill()
    assert caller_done["received"] == "hello from the callee"
    assert callee_done["received"] == "hello from the caller"
    assert caller_done["call_id"] == callee_done["call_id"]
    assert caller_done["local_hosts"] == callee_done["local_hosts"] == ["127.0.0.1"]
    if mode == "sdp":
        assert caller_done["remote_sdp_candidates"] >= 1
        assert callee_done["remote_sdp_candidates"] >= 1
        assert caller_done["sent_candidates"] == callee_done["added_candidates"] == 0
    else:
        # No candidate in either SDP: each one travelled as its own `ice` signal.
        assert caller_done["remote_sdp_candidates"] == callee_done["remote_sdp_candidates"] == 0
        assert caller_done["sent_candidates"] == callee_done["added_candidates"] >= 1
        assert callee_done["sent_candidates"] == caller_done["added_candidates"] >= 1
    async with http.get(f"/v1/calls/{caller_done['call_id']}", headers=ann.auth) as response:
        record = await response.json()
    assert record["answered_at"] is not None
