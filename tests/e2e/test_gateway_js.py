"""The official JavaScript client (npm socket.io-client, run by node) against the gateway:
auth on connect, room:join, message:new from a python client, message:send, a garbage
payload, and a bad token refused with connect_error data {code: "unauthorized"}."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.live import Live, signup
from tests.e2e.test_gateway_chat import create_room
from tests.support.server import HubbubProcess

JS = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="session")
def node_client() -> Path:
    """tests/e2e/js with its node_modules installed (npm ci, once, from package-lock.json)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the JavaScript client test")
    if not (JS / "node_modules" / "socket.io-client").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS,
                       check=True, timeout=300, stdin=subprocess.DEVNULL)
    return JS / "chat.mjs"


async def next_step(lines: asyncio.StreamReader, deadline: float = 20) -> dict[str, Any]:
    line = await asyncio.wait_for(lines.readline(), deadline)
    assert line, "the node client exited early"
    return json.loads(line)


async def test_javascript_client_chats_with_a_python_client(
        hubbub: HubbubProcess, http: aiohttp.ClientSession, node_client: Path) -> None:
    ann, bob = await signup(http, "js_a"), await signup(http, "py_b")
    room = await create_room(http, ann, "direct", [bob])
    py = await Live.connect(hubbub.base_url, bob.token)
    await py.ok("room:join", {"room_id": room})
    node = await asyncio.create_subprocess_exec(
        "node", str(node_client), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "HUBBUB_URL": hubbub.base_url, "HUBBUB_TOKEN": ann.token,
             "HUBBUB_ROOM": room})
    assert node.stdout is not None
    try:
        joined = await next_step(node.stdout)
        assert joined == {"step": "joined", "ack": {"ok": True, "last_seq": 0, "missed": []}}

        mine = (await py.ok("message:send", {"room_id": room, "client_id": "py-1",
                                             "text": "hello from python"}))["message"]
        assert await next_step(node.stdout) == {"step": "message:new",
                                                "data": {"message": mine}}

        sent = await next_step(node.stdout)
        assert sent["step"] == "sent" and sent["ack"]["ok"] is True
        theirs = sent["ack"]["message"]
        assert (theirs["seq"], theirs["sender_id"]) == (2, ann.id)
        assert (await py.expect("message:new", lambda d: d["message"]["seq"] == 2))[
            "message"] == theirs

        garbage = await next_step(node.stdout)
        assert garbage["ack"]["ok"] is False
        assert garbage["ack"]["error"]["code"] == "invalid"

        refused = await next_step(node.stdout)
        assert refused == {"step": "refused", "error": {
            "message": "unauthorized", "data": {"code": "unauthorized"}}}
        assert await next_step(node.stdout) == {"step": "done"}
        assert await asyncio.wait_for(node.wait(), 20) == 0
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
        await py.close()
