"""A throwaway Hubbub cluster for benchmarks: `size` BenchServers sharing one database, one
Redis key prefix and one JWT secret (the first node creates them, the others join it), each
with its own NODE_ID, port and work folder.

`start()` starts the nodes one after the other and returns once every node's /info view
lists every node, so clients connecting next are placed by the full cluster rather than by a
view that is about to change (a change hands actors over). `close()` stops the joiners first
and the first node last, then removes the stores. Blocking, like BenchServer.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from harness import DEFAULT_POSTGRES, DEFAULT_REDIS, BenchServer

CONVERGE_DEADLINE = 30.0  # heartbeats are 1 s apart by default: a view settles in a few
LOG_LEVELS_COUNTED = ("WARNING", "ERROR", "CRITICAL")
# Ids in log messages, replaced so that one kind of problem groups under one message.
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class BenchCluster:
    name: str  # node ids are "<name>-1", "<name>-2", ...
    size: int
    postgres_url: str = DEFAULT_POSTGRES
    redis_url: str = DEFAULT_REDIS
    # Another server than Hubbub (BenchServer.command / label), e.g. the cluster peer of
    # loadtest/bench_cluster_peer.py; it has no membership view to wait for.
    command: tuple[str, ...] = BenchServer.command
    label: str = BenchServer.label
    nodes: list[BenchServer] = field(init=False, default_factory=list)

    @property
    def node_ids(self) -> list[str]:
        return [node.name for node in self.nodes]

    @property
    def urls(self) -> list[str]:
        return [node.base_url for node in self.nodes]

    def start(self, log_level: str = "WARNING", **env: str) -> list[str]:
        """Start every node with `env`, wait for one view of all of them; their base URLs."""
        for index in range(self.size):
            first = self.nodes[0] if self.nodes else None
            # Appended before start() so that close() removes what a failed start left.
            node = BenchServer(f"{self.name}-{index + 1}", self.postgres_url, self.redis_url,
                               peer=first, redis_required=True, command=self.command,
                               label=self.label)
            self.nodes.append(node)
            node.start(log_level, **env)
        if self.label == BenchServer.label:
            self._wait_converged()
        return self.urls

    def _wait_converged(self) -> None:
        """Poll every node's /info until each view lists exactly the nodes we started."""
        wanted = sorted(self.node_ids)
        deadline = time.monotonic() + CONVERGE_DEADLINE
        views: dict[str, Any] = {}
        while time.monotonic() < deadline:
            views = {node.name: node.get_json("/info").get("cluster") for node in self.nodes}
            if all(view and sorted(view["nodes"]) == wanted for view in views.values()):
                versions = {name: view["version"] for name, view in views.items()}
                print(f"cluster view settled: {wanted} (versions {versions})", flush=True)
                return
            time.sleep(0.2)  # no notification of a view change reaches us: poll
        raise TimeoutError(f"views did not converge on {wanted} in {CONVERGE_DEADLINE:.0f}s: "
                           f"{json.dumps(views)}")

    def processes(self) -> list[psutil.Process]:
        return [psutil.Process(node.process.pid) for node in self.nodes if node.process]

    def metric_total(self, name: str) -> float:
        """A Prometheus sample summed over every node and label (e.g. messages sent to other
        nodes: hubbub_cluster_remote_sent_total)."""
        total = 0.0
        for node in self.nodes:
            for line in node.get_text("/metrics").splitlines():
                sample, _, value = line.rpartition(" ")
                if sample.split("{", 1)[0] == name:
                    total += float(value)
        return total

    def log_problems(self, since: float) -> list[LogLine]:
        """Every node's log lines at WARNING or above stamped at `since` (unix time) or later,
        so that start-up notices are left out."""
        found: list[LogLine] = []
        for node in self.nodes:
            if not node.log_path.exists():
                continue
            for text in node.log_path.read_text(errors="replace").splitlines():
                line = LogLine.parse(node.name, text)
                if line is not None and line.level in LOG_LEVELS_COUNTED and line.ts >= since:
                    found.append(line)
        return found

    def keep_logs(self, folder: Path) -> None:
        """Copy the nodes' logs to `folder` (their work folders go away on close)."""
        folder.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            if node.log_path.exists():
                shutil.copyfile(node.log_path, folder / f"{node.name}.log")

    def stop(self) -> list[tuple[int | None, float]]:
        """SIGTERM the nodes, joiners first (a rolling shutdown: the last node standing takes
        the actors over); (exit code, seconds) per node in start order."""
        stopped = [node.stop() for node in reversed(self.nodes)]
        return list(reversed(stopped))

    def close(self) -> None:
        """Stop every node, then drop the database and the Redis keys (the first node owns
        them, so it goes last)."""
        for node in reversed(self.nodes):
            node.close()


@dataclass(frozen=True)
class LogLine:
    node: str
    ts: float  # unix time; +inf when the line is not a log record (its time is unknown)
    level: str
    what: str  # "logger: message", ids replaced by <id>
    detail: str  # the last line of the exception it carries, if any (ids left in)
    text: str

    @classmethod
    def parse(cls, node: str, text: str) -> LogLine | None:
        if not text.strip():
            return None
        try:
            record = json.loads(text)
            when = datetime.fromisoformat(record["ts"]).timestamp()
            exc = str(record.get("exc", "")).strip().splitlines()
            return cls(node, when, str(record["level"]).upper(),
                       UUID.sub("<id>", f"{record.get('logger', '?')}: {record.get('msg', '')}"),
                       exc[-1] if exc else "", text)
        except (ValueError, KeyError, TypeError, AttributeError):
            # The server logs JSON lines: anything else is a traceback or a crash message.
            return cls(node, math.inf, "ERROR", text[:200], "", text)
