"""Prometheus metrics of the scheduler (served at /metrics with the rest).

- `hubbub_scheduled_publish_attempts_total{kind,outcome}`: tries at targets.
- `hubbub_scheduled_posts_settled_total{status}`: rounds ended published, failed, or waiting
  for a retry (publishing).
- `hubbub_scheduled_post_lateness_seconds`: from scheduled_for to published, for posts
  published on their first round (a retried post is late by design).
- `hubbub_scheduler_rounds_running`: rounds this node runs right now.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from protocols.schedule_records import ClaimedPost, Settlement
from server.scheduling.scheduler import Scheduler, SchedulerObserver


class SchedulerMetrics(SchedulerObserver):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter("hubbub_scheduled_publish_attempts",
                                "Publish attempts of scheduled post targets",
                                ["kind", "outcome"], registry=registry)
        self.settled_total = Counter("hubbub_scheduled_posts_settled",
                                     "Publishing rounds of scheduled posts, by how they ended",
                                     ["status"], registry=registry)
        self.lateness = Histogram(
            "hubbub_scheduled_post_lateness_seconds",
            "Seconds from scheduled_for to published (first-round publications)",
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30, 60, 300))
        self.running = Gauge("hubbub_scheduler_rounds_running",
                             "Publishing rounds running on this node", registry=registry)

    def watch(self, scheduler: Scheduler) -> None:
        self.running.set_function(lambda: scheduler.running_rounds)

    def attempted(self, kind: str, outcome: str) -> None:
        self.attempts.labels(kind=kind, outcome=outcome).inc()

    def settled(self, post: ClaimedPost, settlement: Settlement) -> None:
        self.settled_total.labels(status=settlement.status).inc()
        if settlement.status == "published" and post.due_at <= post.scheduled_for:
            self.lateness.observe(max(0.0, (settlement.at - post.scheduled_for)
                                      .total_seconds()))
