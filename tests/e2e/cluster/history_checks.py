"""What the cluster tests check of a chat client's history (tests/e2e/cluster/clients.py):
every seq once, each the acked message, live pushes in order, replays without gaps."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from tests.e2e.cluster.clients import ChatClient, Session


def late_pushes(session: Session) -> list[int]:
    """Seqs this socket received live after a greater one (first arrival only)."""
    late, top, seen = [], 0, set()
    for seq in session.live_seqs:
        if seq < top and seq not in seen:
            late.append(seq)
        seen.add(seq)
        top = max(top, seq)
    return late


def check_history(client: ChatClient, n: int, by_seq: dict[int, dict[str, Any]], *,
                  late_ok: bool = False) -> list[str]:
    """What is wrong with what `client` ended up with, given the room's n messages by seq
    (from the acks): [] when it holds seq 1..n exactly, each the acked message, no socket
    received a seq twice live, every replay is gap-free, and every socket's live stream is
    in increasing order; with `late_ok`, a seq may arrive after greater ones (once): the
    late push of a message a killed node stored but never pushed (actors/room.py
    _publish_if_unpublished)."""
    client.scan()
    problems = []
    if set(client.messages) != set(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(client.messages))
        extra = sorted(set(client.messages) - set(range(1, n + 1)))
        problems.append(f"{client.name}: missing seqs {missing[:20]} (of {len(missing)}), "
                        f"unexpected {extra[:20]}")
    wrong = [seq for seq, m in client.messages.items()
             if seq in by_seq and m["id"] != by_seq[seq]["id"]]
    if wrong:
        problems.append(f"{client.name}: seqs {wrong[:20]} hold another message than acked")
    if client.conflicts:
        problems.append(f"{client.name}: {len(client.conflicts)} seqs seen with two ids, "
                        f"e.g. {client.conflicts[0]}")
    for i, session in enumerate(client.sessions):
        seqs = session.live_seqs
        where = f"{client.name} socket {i} (node {session.node})"
        dupes = sorted(s for s, c in Counter(seqs).items() if c > 1)
        if dupes:
            problems.append(f"{where}: live message:new delivered twice: {dupes[:20]}; "
                            f"those messages: {_brief(client, dupes[:5])}")
        inversions = [k for k, (a, b) in enumerate(itertools.pairwise(seqs)) if b <= a]
        if inversions and not late_ok:
            k = inversions[0]
            problems.append(f"{where}: live message:new out of order at {len(inversions)} "
                            f"places, first around {seqs[max(0, k - 3):k + 5]}; those "
                            f"messages: {_brief(client, seqs[max(0, k - 1):k + 3])}")
        if session.since is not None:
            expected = list(range(session.since + 1, session.last_seq + 1))
            if session.missed != expected:
                problems.append(f"{where}: join since {session.since} replayed "
                                f"{session.missed[:10]}.. not {expected[:10]}..")
    return problems


def _brief(client: ChatClient, seqs: list[int]) -> list[tuple[Any, ...]]:
    return [(s, client.messages[s]["client_id"], client.messages[s]["created_at"])
            for s in seqs if s in client.messages]
