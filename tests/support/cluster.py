"""Several `hubbub serve` processes forming one cluster, for end-to-end tests.

Every node shares the database, Redis (and its key prefix), the JWT secret and the lifted rate
limits of tests/e2e/conftest.py `e2e_env`; each has its own NODE_ID (`node-<i>`, i counted from
0) and port. Nodes are launched together and then awaited one by one, and `start()` returns
once every node's /info shows the same view of all of them.

Everything that waits here is asynchronous (the tests drive socket clients on the same event
loop while a node is killed, stopped or restarted) and bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from typing import Any

import aiohttp

from tests.e2e.conftest import e2e_env
from tests.support import redis_keys
from tests.support.polling import eventually
from tests.support.server import HubbubProcess

READY_DEADLINE = 60.0  # a cold start on a loaded 2-core machine, migrations included
VIEW_DEADLINE = 15.0
STOP_DEADLINE = 45.0
_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# Clusters started and not yet closed (a failing test's report shows their warnings).
RUNNING: list[HubbubCluster] = []
# Set to a directory to keep every node's log there after the cluster closed (the process
# work directories are removed when the test session ends).
KEEP_LOGS_ENV = "HUBBUB_E2E_KEEP_LOGS"


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition -> [(name, labels, value)] (comments skipped)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group("labels") or ""))
        try:
            value = float(match.group("value"))
        except ValueError:
            continue
        samples.append((match.group("name"), labels, value))
    return samples


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    return sum(value for sample, got, value in parse_metrics(text)
               if sample == name and all(got.get(k) == v for k, v in labels.items()))


class HubbubCluster:
    """N nodes of one cluster. `up` holds the indexes of the nodes that are serving (not
    being stopped, killed or restarted): clients pick their node among those."""

    def __init__(self, size: int, database_url: str, redis_url: str,
                 extra_env: dict[str, str] | None = None) -> None:
        base = {**e2e_env(database_url, redis_url),
                "PRESENCE_GRACE_SECONDS": "1",
                # Test clients send as fast as acks come back; the per-socket event limit
                # (20/s) is not what these tests are about.
                "SOCKET_EVENTS_PER_SECOND": "1000",
                "SOCKET_EVENT_BURST": "1000",
                **(extra_env or {})}
        self.database_url = database_url
        self.env = base
        self.nodes = [HubbubProcess({**base, "NODE_ID": f"node-{i}"},
                                    ready_timeout=READY_DEADLINE) for i in range(size)]
        self.up: set[int] = set()
        self.killed: set[int] = set()
        self._http: aiohttp.ClientSession | None = None

    # -- addressing -------------------------------------------------------------------------

    def node_id(self, i: int) -> str:
        return self.nodes[i].env["NODE_ID"]

    def url(self, i: int) -> str:
        return self.nodes[i].base_url

    def index_of(self, node_id: str) -> int:
        return next(i for i in range(len(self.nodes)) if self.node_id(i) == node_id)

    def live_ids(self) -> list[str]:
        return sorted(self.node_id(i) for i in self.up)

    def other_up(self, not_this: int) -> int:
        """A serving node other than `not_this` (the next one round the ring)."""
        size = len(self.nodes)
        for step in range(1, size + 1):
            candidate = (not_this + step) % size
            if candidate != not_this and candidate in self.up:
                return candidate
        raise RuntimeError(f"no serving node other than {not_this}")

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            # No keep-alive: nodes are killed and restarted on the same ports.
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=5),
                connector=aiohttp.TCPConnector(force_close=True))
        return self._http

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> HubbubCluster:
        for node in self.nodes:
            node.launch()
        RUNNING.append(self)
        try:
            await asyncio.gather(*(self._ready(i) for i in range(len(self.nodes))))
            self.up = set(range(len(self.nodes)))
            await self.wait_view(self.live_ids(), VIEW_DEADLINE)
        except BaseException:
            for node in self.nodes:
                node.kill()
            raise
        return self

    async def _ready(self, i: int, deadline: float = READY_DEADLINE) -> None:
        node = self.nodes[i]

        async def ready() -> bool:
            node.check_running()  # raises with the log when it exited
            try:
                async with self.http.get(f"{node.base_url}/ready",
                                         timeout=aiohttp.ClientTimeout(total=2)) as response:
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await eventually(ready, deadline, f"{self.node_id(i)} to be ready")

    async def _exited(self, i: int, deadline: float) -> int:
        """Wait for node `i`'s process to end (on the process itself, in a thread)."""
        process = self.nodes[i].process
        assert process is not None
        try:
            return await asyncio.to_thread(process.wait, deadline)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.node_id(i)} still running after {deadline}s") from None

    async def kill(self, i: int) -> float:
        """SIGKILL node i and reap it; returns the time.monotonic() of the signal."""
        self.up.discard(i)
        self.killed.add(i)
        at = time.monotonic()
        self.nodes[i].send_signal(signal.SIGKILL)
        await self._exited(i, 10)
        return at

    async def stop(self, i: int, deadline: float = STOP_DEADLINE) -> int:
        """SIGTERM node i and wait for it to exit; returns its exit code."""
        self.up.discard(i)
        self.nodes[i].send_signal(signal.SIGTERM)
        return await self._exited(i, deadline)

    async def restart(self, i: int, deadline: float = READY_DEADLINE) -> None:
        """Start node i again (same NODE_ID, port and environment) once it has exited; wait
        until it serves and every serving node's view holds it."""
        if self.nodes[i].running:
            raise RuntimeError(f"{self.node_id(i)} is still running")
        self.nodes[i].launch()
        await self._ready(i, deadline)
        self.killed.discard(i)
        self.up.add(i)
        await self.wait_view(self.live_ids(), VIEW_DEADLINE)

    async def close(self) -> None:
        """SIGTERM every node still running, one after the other; each must exit 0 unless
        it was killed (and not restarted). Then the cluster's Redis keys (its own prefix)
        are deleted."""
        failures = []
        try:
            for i, node in enumerate(self.nodes):
                if not node.running:
                    continue
                code = await self.stop(i)
                if code != 0 and i not in self.killed:
                    failures.append(f"{self.node_id(i)} exited {code} on SIGTERM "
                                    f"(log: {node.log_path})")
        finally:
            for node in self.nodes:
                node.kill()
            if self._http is not None:
                await self._http.close()
                self._http = None
            if self in RUNNING:
                RUNNING.remove(self)
            self._keep_logs()
            await asyncio.to_thread(redis_keys.delete_prefix, self.env["REDIS_URL"],
                                    self.env["REDIS_KEY_PREFIX"])
        assert not failures, failures

    def _keep_logs(self) -> None:
        keep = os.environ.get(KEEP_LOGS_ENV)
        if not keep:
            return
        os.makedirs(keep, exist_ok=True)
        database = self.database_url.rsplit("/", 1)[-1]
        for i, node in enumerate(self.nodes):
            if node.log_path.exists():
                shutil.copy(node.log_path, os.path.join(keep, f"{database}-node-{i}.log"))

    # -- what the nodes say ---------------------------------------------------------------------

    async def info(self, i: int) -> dict[str, Any]:
        async with self.http.get(f"{self.url(i)}/info") as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def views(self, nodes: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
        """{node index: /info `cluster`} for the serving nodes (or `nodes`)."""
        chosen = sorted(self.up if nodes is None else nodes)
        infos = await asyncio.gather(*(self.info(i) for i in chosen))
        return {i: info["cluster"] for i, info in zip(chosen, infos, strict=True)}

    async def wait_view(self, expected_node_ids: Iterable[str], deadline: float,
                        nodes: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
        """Poll until every serving node (or `nodes`) lists exactly `expected_node_ids`, all
        at the same view version; returns the views."""
        expected = sorted(expected_node_ids)
        last: Any = None

        async def settled() -> bool:
            nonlocal last
            try:
                last = await self.views(nodes)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = exc
                return False
            return all(sorted(v["nodes"]) == expected for v in last.values()) and \
                len({v["version"] for v in last.values()}) == 1

        try:
            await eventually(settled, deadline, f"views to settle on {expected}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last seen: {last}") from None
        return last

    async def metrics(self, i: int) -> str:
        async with self.http.get(f"{self.url(i)}/metrics") as response:
            assert response.status == 200
            return await response.text()

    async def live_by_node(self, kind: str) -> dict[int, int]:
        """{serving node index: hubbub_actors_live{kind=...}}."""
        chosen = sorted(self.up)
        texts = await asyncio.gather(*(self.metrics(i) for i in chosen))
        return {i: int(metric_value(text, "hubbub_actors_live", kind=kind))
                for i, text in zip(chosen, texts, strict=True)}

    async def live_count(self, kind: str) -> int:
        """Activations of actor `kind` in the whole cluster (serving nodes)."""
        return sum((await self.live_by_node(kind)).values())

    async def metric(self, name: str, **labels: str) -> dict[int, float]:
        chosen = sorted(self.up)
        texts = await asyncio.gather(*(self.metrics(i) for i in chosen))
        return {i: metric_value(text, name, **labels)
                for i, text in zip(chosen, texts, strict=True)}

    # -- logs -------------------------------------------------------------------------------

    def logs(self, i: int) -> list[dict[str, Any]]:
        return self.nodes[i].logs()

    def complaints(self, limit: int = 40) -> list[str]:
        """The last warning / error lines every node logged (for failure reports)."""
        lines = []
        for i in range(len(self.nodes)):
            found = [e for e in self.logs(i) if e.get("level") in ("warning", "error",
                                                                    "critical")]
            lines += [f"{self.node_id(i)}: {e}" for e in found[-limit:]]
        return lines

    def log_lines(self, pattern: str, levels: tuple[str, ...] = ()) -> list[str]:
        """Every JSON log line of every node whose message matches `pattern` (regex), with
        its node id, for failure reports."""
        found = []
        rx = re.compile(pattern)
        for i in range(len(self.nodes)):
            for entry in self.logs(i):
                if levels and entry.get("level") not in levels:
                    continue
                if rx.search(str(entry.get("msg", ""))):
                    found.append(f"{self.node_id(i)}: {entry}")
        return found
