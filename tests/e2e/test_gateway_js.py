"""The official JavaScript client (npm socket.io-client, run by node) against the gateway:
auth on connect, room:join, message:new from a python client, message:send, a garbage
payload, and a bad token refused with connect_error data {code: "unauthorized"}.

Its npm dependencies are installed on the first run (`npm ci` in tests/e2e/js): from the npm
cache alone when it has them, otherwise from the registry. When neither works because the
registry cannot be reached (no network), the test is skipped within seconds, saying so,
rather than erroring after npm's own minute of retries."""

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
from tests.support.services import free_port

JS = Path(__file__).resolve().parent / "js"
_QUIET = ("--no-audit", "--no-fund", "--loglevel=error")
PING_TIMEOUT_MS = 5_000  # npm's own bound on the registry check (no retries)
INSTALL_TIMEOUT = 300.0  # seconds for a whole `npm ci` from a registry that answered


def _npm(folder: Path, env: dict[str, str] | None, *args: str,
         timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["npm", *args], cwd=folder, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("npm error")] or lines
    return " / ".join(errors[:3]) if errors else "no output"


def install_node_client(folder: Path, env: dict[str, str] | None = None) -> None:
    """`npm ci` in `folder` unless its node_modules is complete. Skips (pytest.skip) when the
    npm cache lacks a package and the registry is unreachable; fails with npm's words when
    the registry answers and the install fails all the same."""
    modules = folder / "node_modules"
    if (modules / "socket.io-client").is_dir() and (modules / ".package-lock.json").is_file():
        return
    # The npm cache alone: no network, and it fails at once when a package is missing.
    if _npm(folder, env, "ci", "--offline", *_QUIET, timeout=120).returncode == 0:
        return
    try:
        ping = _npm(folder, env, "ping", f"--fetch-timeout={PING_TIMEOUT_MS}",
                    "--fetch-retries=0", timeout=PING_TIMEOUT_MS / 1000 + 30)
        reachable, why = ping.returncode == 0, _last_error(ping.stderr)
    except subprocess.TimeoutExpired:
        reachable, why = False, f"no answer within {PING_TIMEOUT_MS // 1000} s"
    if not reachable:
        registry = _npm(folder, env, "config", "get", "registry", timeout=30).stdout.strip()
        pytest.skip(f"the JavaScript client test needs npm packages that are neither in "
                    f"{folder / 'node_modules'} nor in the npm cache, and the npm registry "
                    f"{registry or '(unknown)'} is unreachable ({why}); run `npm ci` in "
                    f"{folder} with network access to enable it")
    try:
        install = _npm(folder, env, "ci", *_QUIET, "--fetch-retries=1", timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`npm ci` in {folder} took over {INSTALL_TIMEOUT:.0f} s although the npm "
                    "registry answered a ping")
    if install.returncode != 0:
        pytest.fail(f"`npm ci` in {folder} failed although the npm registry answered a ping: "
                    f"{_last_error(install.stderr)}")


@pytest.fixture(scope="session")
def node_client() -> Path:
    """tests/e2e/js with its node_modules installed (npm ci, once, from package-lock.json)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the JavaScript client test")
    install_node_client(JS)
    return JS / "chat.mjs"


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is needed for this check")
def test_an_unreachable_registry_without_a_cache_is_a_prompt_skip(tmp_path: Path) -> None:
    for name in ("package.json", "package-lock.json"):
        shutil.copy(JS / name, tmp_path / name)
    dead_registry = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    env = {"npm_config_registry": dead_registry, "npm_config_cache": str(tmp_path / "cache"),
           "npm_config_proxy": "", "npm_config_https_proxy": ""}
    with pytest.raises(pytest.skip.Exception) as skipped:
        install_node_client(tmp_path, env)
    reason = str(skipped.value)
    assert "unreachable" in reason and dead_registry in reason and "npm ci" in reason
    assert not (tmp_path / "node_modules" / "socket.io-client").exists()


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
