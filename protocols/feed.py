"""Feed shapes. `GET /v1/feed` answers `HomeFeed` (a `Page[Post]` plus `degraded`) and
`GET /v1/feed/popular` `Page[Post]`, both with the common `?limit=&cursor=` query
(protocols.common); what is particular to feeds lives here."""

from __future__ import annotations

from typing import Annotated

import msgspec

from protocols.base import Outbound
from protocols.posts import Post

Degraded = Annotated[bool, msgspec.Meta(description=(
    "True when the home feed's stores kept failing and this page holds popular posts instead "
    "(the `Hubbub-Degraded: feed` header says the same); its `next_cursor` goes on through "
    "that ranking. A request without a cursor tries the home feed again."))]


class HomeFeed(Outbound):
    """A page of the home feed (`GET /v1/feed`): `Page[Post]`'s fields, plus `degraded`."""

    items: list[Post]
    next_cursor: str | None = None
    degraded: Degraded = False


class FeedNew(Outbound):
    """Socket.IO `feed:new` (server -> client): a post just arrived in the user's home feed."""

    post: Post


class Ranking(Outbound):
    """A computed popular ranking as cached (JSON in Redis): post ids, best first.
    `generation` names this computation; popular-feed cursors carry it."""

    generation: str
    ids: list[str]
