"""Every metric the Grafana dashboards, the Prometheus alert rules and the HPA name is one the
app exports: the names are read from the PromQL and looked up in the app's own metrics registry
(built by create_app, as /metrics serves it), so a renamed or removed metric fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from server.app import create_app
from server.config import load_settings
from server.metrics import METRICS, POOL_METRICS
from server.scheduling.metrics import SchedulerMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
HPA = DEPLOY / "k8s" / "hpa.yaml"
# Series Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up"}
# The sample names each metric type exposes, after the family name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}
# PromQL words that are not metric names where an identifier may stand.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "start", "end", "inf", "nan"}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


class _Pool:
    """Stands in for the asyncpg pool, whose gauges are exported only once there is one."""

    def get_size(self) -> int:
        return 2

    def get_idle_size(self) -> int:
        return 1

    def get_max_size(self) -> int:
        return 20


def exported_metric_names() -> set[str]:
    """The sample names the app's /metrics can serve, with every optional adapter configured
    (nothing connects: create_app does no I/O), plus what registers later at startup."""
    app = create_app(load_settings({
        "JWT_SECRET": "x" * 32,
        "DATABASE_URL": "postgresql://hubbub@127.0.0.1:1/hubbub",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "S3_ENDPOINT_URL": "http://127.0.0.1:1",
    }))
    registry: CollectorRegistry = app[METRICS].registry
    # Registered by scheduling_ctx and database_ctx when the app starts.
    SchedulerMetrics(registry)
    app[POOL_METRICS].set_database(_Pool())
    names = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's $variables allowed)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\$\{?\w+\}?", "1", text)  # $__rate_interval, ${instance}
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = _GROUPING.sub("", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in KEYWORDS}


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = []
    panels = list(dashboard.get("panels", []))
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))  # panels of collapsed rows
        exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def _label_values_metric(expr: str) -> str:
    """label_values(up{job="hubbub"}, instance) -> up{job="hubbub"}"""
    match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", expr)
    return match.group(1) if match else expr


def used_in_dashboards() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        for expr in _dashboard_exprs(json.loads(path.read_text())):
            for name in metric_names(_label_values_metric(expr)):
                used.setdefault(name, set()).add(path.name)
    return used


def used_in_alert_rules() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]:
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                used.setdefault(name, set()).add(rule.get("alert") or rule["record"])
    return used


def used_in_hpa() -> set[str]:
    hpa = yaml.safe_load(HPA.read_text())
    return {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_metric_names()


def test_the_registry_holds_what_the_app_exports(exported: set[str]) -> None:
    # A sanity check of the lookup itself: one name of each kind of collector.
    assert {"hubbub_http_requests_total", "hubbub_http_request_duration_seconds_bucket",
            "hubbub_sockets_connected", "hubbub_actor_restarts_total",
            "hubbub_outbox_oldest_pending_seconds", "hubbub_cluster_remote_ask_seconds_bucket",
            "hubbub_db_pool_max_connections", "hubbub_scheduler_rounds_running"} <= exported


def test_dashboards_name_only_exported_metrics(exported: set[str]) -> None:
    used = used_in_dashboards()
    assert len(used) >= 30, sorted(used)  # the parser found the dashboards' metrics
    unknown = {name: sorted(where) for name, where in used.items()
               if name not in exported | PROMETHEUS_OWN}
    assert unknown == {}


def test_alert_rules_name_only_exported_metrics(exported: set[str]) -> None:
    used = used_in_alert_rules()
    assert len(used) >= 8, sorted(used)
    unknown = {name: sorted(where) for name, where in used.items()
               if name not in exported | PROMETHEUS_OWN}
    assert unknown == {}


def test_hpa_scales_on_an_exported_gauge(exported: set[str]) -> None:
    assert used_in_hpa() == {"hubbub_sockets_connected"}
    assert used_in_hpa() <= exported


@pytest.mark.parametrize(("expr", "names"), [
    ('sum(rate(hubbub_http_requests_total{status=~"5..",route!~"a|b"}[5m]))', {
        "hubbub_http_requests_total"}),
    ("histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{i=~\"$instance\"}"
     "[$__rate_interval])))", {"x_bucket"}),
    ("a / on (instance) group_left (pool) b > 0.9 and c offset 10m", {"a", "b", "c"}),
    ("max(x) != min(y) unless z[5m:1m] > 1e-9", {"x", "y", "z"}),
])
def test_metric_names_reads_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_dashboard_naming_a_missing_metric_would_fail(exported: set[str]) -> None:
    dashboard = {"panels": [{"type": "row", "panels": [{"targets": [
        {"expr": "sum(rate(hubbub_http_requests_total[5m]))"},
        {"expr": "rate(hubbub_no_such_metric_total[5m])"}]}]}]}
    used = {n for e in _dashboard_exprs(dashboard) for n in metric_names(e)}
    assert used - exported == {"hubbub_no_such_metric_total"}
