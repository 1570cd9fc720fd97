"""Operational endpoints: health, readiness, build info."""

from __future__ import annotations

from protocols.base import Outbound
from protocols.cluster import ClusterInfo


class Health(Outbound):
    status: str


class Readiness(Outbound):
    status: str
    checks: dict[str, str]


class Info(Outbound):
    name: str
    version: str
    node_id: str
    started_at: str
    uptime_seconds: float
    adapters: dict[str, str]
    cluster: ClusterInfo | None = None
