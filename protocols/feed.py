"""Feed shapes. `GET /v1/feed` and `GET /v1/feed/popular` answer `Page[Post]` with the common
`?limit=&cursor=` query (protocols.common); what is particular to feeds lives here."""

from __future__ import annotations

from protocols.base import Outbound
from protocols.posts import Post


class FeedNew(Outbound):
    """Socket.IO `feed:new` (server -> client): a post just arrived in the user's home feed."""

    post: Post


class Ranking(Outbound):
    """A computed popular ranking as cached (JSON in Redis): post ids, best first.
    `generation` names this computation; popular-feed cursors carry it."""

    generation: str
    ids: list[str]
