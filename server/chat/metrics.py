"""Chat's counters on /metrics, read when it is scraped (nothing is recorded per message).

- `hubbub_chat_commits_total`: group commits this node wrote (storage/postgres/
  message_batches.py), and `hubbub_chat_committed_messages_total`: the messages they stored.
  The quotient of their rates is the mean batch size: how many messages share each commit's
  cost (a statement costs Postgres nearly as much for one message as for ten).
- `hubbub_chat_history_append_failures_total`: hot history appends Redis refused or lost
  (storage/redis/chat_history.py). The messages are committed and pushed all the same; a
  room:join that misses them in the cache reads them from Postgres.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class CommitCounts(Protocol):
    batches: int
    messages: int


class ChatCollector(Collector):
    def __init__(self, commits: CommitCounts, history: object) -> None:
        self._commits = commits
        self._history = history  # a RedisChatHistory counts failures; the in-memory one none

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("hubbub_chat_commits",
                                  "Group commits of chat messages written by this node",
                                  value=self._commits.batches)
        yield CounterMetricFamily("hubbub_chat_committed_messages",
                                  "Chat messages stored by this node's group commits",
                                  value=self._commits.messages)
        yield CounterMetricFamily("hubbub_chat_history_append_failures",
                                  "Hot history appends lost to a Redis failure",
                                  value=getattr(self._history, "failures", 0))
