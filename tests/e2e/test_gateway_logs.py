"""Every line a server process writes is JSON, python-engineio's and python-socketio's too,
each once (no plain-text handler of theirs, no duplicate through propagation)."""

from __future__ import annotations

import json

import aiohttp

from tests.e2e.conftest import sibling_server
from tests.e2e.live import signup
from tests.e2e.test_gateway_frames import next_ack, open_socket
from tests.support.server import HubbubProcess


async def test_engineio_and_socketio_lines_are_json_and_logged_once(
        hubbub: HubbubProcess) -> None:
    with sibling_server(hubbub) as server:
        async with aiohttp.ClientSession(base_url=server.base_url) as http:
            # python-engineio logs each of these (an error, then INFO for repeats).
            for path in ("/socket.io/?EIO=3&transport=polling",  # unsupported version
                         "/socket.io/?EIO=4&transport=polling&sid=nope"):  # no such session
                async with http.get(path) as response:
                    assert response.status == 400
            ann = await signup(http, "logs")
            ws = await open_socket(http, server.base_url, ann.token)
            await ws.send_str("42{not json")  # a bad frame: our warning
            await ws.send_str("431[]")  # an ack of nothing asked: python-socketio's warning
            await ws.send_str('42/elsewhere,["x"]')  # a namespace it is not in: another
            await ws.send_str('421["presence:subscribe",{"user_ids":[]}]')
            assert (await next_ack(ws))["ok"] is True  # all of the above was handled
            await ws.close()
    text = server.log_path.read_text()
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} of the log is not JSON: {line!r}") from None
    engineio = [e["msg"] for e in entries if e["logger"] == "engineio.server"]
    assert sorted(m.split(" (")[0] for m in engineio) == [
        "Invalid session nope",
        "The client is using an unsupported version of the Socket.IO or Engine.IO protocols"]
    socketio = [e["msg"] for e in entries if e["logger"] == "socketio.server"]
    assert sorted(socketio) == ["None is not connected to namespace /elsewhere",
                                "Unknown callback received, ignoring."]
    assert [e["msg"] for e in entries if e["msg"] == "unparseable Socket.IO frame"] == [
        "unparseable Socket.IO frame"]
