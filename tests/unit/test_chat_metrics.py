"""Chat's scrape-time counters (server/chat/metrics.py) and the room packets between nodes
(server/gateway/metrics.py room_packets): read from the counters the adapters keep, as they
are when /metrics is scraped."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from server.chat.metrics import ChatCollector
from server.gateway.metrics import room_packets


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples}


def test_commits_and_their_messages_are_read_when_scraped() -> None:
    registry = CollectorRegistry()
    commits = SimpleNamespace(batches=0, messages=0)
    history = SimpleNamespace(failures=0)
    registry.register(ChatCollector(commits, history))
    commits.batches, commits.messages, history.failures = 3, 17, 2
    got = samples(registry)
    assert got[("hubbub_chat_commits_total", ())] == 3
    assert got[("hubbub_chat_committed_messages_total", ())] == 17
    assert got[("hubbub_chat_history_append_failures_total", ())] == 2


def test_a_history_that_counts_no_failures_reads_zero() -> None:
    registry = CollectorRegistry()
    registry.register(ChatCollector(SimpleNamespace(batches=1, messages=1), object()))
    assert samples(registry)[("hubbub_chat_history_append_failures_total", ())] == 0


def test_room_packets_by_direction_and_their_failures() -> None:
    channels = SimpleNamespace(published=5, received=7, failures=1)
    families = {family.name: family for family in room_packets(channels)}
    assert {tuple(s.labels.items()): s.value for s in families["hubbub_room_packets"].samples} \
        == {(("direction", "published"),): 5, (("direction", "received"),): 7}
    assert [s.value for s in families["hubbub_room_packet_failures"].samples] == [1]
