"""Prometheus metrics of the home feed's circuit breaker, on the app's registry (server.metrics).

- `hubbub_feed_breaker_state`: 0 closed, 1 open, 2 half-open (read at scrape time).
- `hubbub_feed_breaker_transitions_total{state}`: transitions into each state.
- `hubbub_feed_fallbacks_total{reason}`: home-feed pages answered from the popular ranking
  (degraded): `open` (the breaker refused the call), `failed` (the call failed),
  `cursor` (the next page of a degraded listing).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from server.feed.breaker import BreakerState, CircuitBreaker

FALLBACK_REASONS = ("open", "failed", "cursor")


class FeedMetrics:
    """Also the FeedService's observer (`fallback(reason)`) and the breaker's listener."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.breaker_state = Gauge(
            "hubbub_feed_breaker_state",
            "The home feed's circuit breaker: 0 closed, 1 open (answering from the popular "
            "ranking), 2 half-open (one trial call let through)", registry=registry)
        self.transitions = Counter(
            "hubbub_feed_breaker_transitions",
            "Transitions of the home feed's circuit breaker, by the state entered",
            ["state"], registry=registry)
        self.fallbacks = Counter(
            "hubbub_feed_fallbacks",
            "Home feed pages answered from the popular ranking (degraded), by why",
            ["reason"], registry=registry)
        for state in BreakerState:
            self.transitions.labels(state.name.lower())
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(reason)

    def watch(self, breaker: CircuitBreaker) -> None:
        self.breaker_state.set_function(lambda: float(breaker.state))

    def changed(self, old: BreakerState, new: BreakerState) -> None:
        self.transitions.labels(new.name.lower()).inc()

    def fallback(self, reason: str) -> None:
        self.fallbacks.labels(reason).inc()
