"""Post hydration: ids plus a viewer in, contract `Post`s out, in a constant number of queries.

The feed, the post lists and every post route read posts through `PostReader.get_many`: one
query for the posts and what they repost or quote (PostRowSource.rows), and one batch for all
their media, whatever the page size.

Rules:
- deleted posts and posts hidden from the viewer by a block are dropped; so is a repost whose
  original is deleted or hidden;
- with exclude_muted (lists and the feed), posts by authors the viewer mutes are dropped too,
  and so are reposts of them; a muted author's post is still readable directly;
- quote_of is one level deep and null when the quoted post is deleted or hidden;
- repost_of is the original, with its own quote_of filled (a repost of a quote shows what it
  quotes); a repost has no text or counters of its own, so its counters and the
  liked_by_me / reposted_by_me flags mirror the original's (likes and reposts of a repost go
  to the original).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from protocols.media import Media
from protocols.post_records import PostRow
from protocols.posts import Post
from protocols.users import UserSummary
from server.posts.ports import MediaLookup, PostRowSource, Transaction


class PostReader:
    def __init__(self, rows: PostRowSource, media: MediaLookup | None = None) -> None:
        self._rows = rows
        self._media = media

    async def get(self, post_id: str, viewer_id: str | None, *,
                  tx: Transaction = None) -> Post | None:
        """One post as the viewer sees it; None when missing, deleted or hidden."""
        found = await self.get_many([post_id], viewer_id, tx=tx)
        return found[0] if found else None

    async def get_many(self, post_ids: Sequence[str], viewer_id: str | None, *,
                       exclude_muted: bool = False, tx: Transaction = None) -> list[Post]:
        """The posts in the order given (duplicates once), without the ones the viewer may not
        see (see the module docstring). With `tx`, the rows are read inside that transaction
        and media are left out (the media service reads committed data, on connections of
        its own): re-read after the commit for them."""
        if not post_ids:
            return []
        rows = {row.id: row for row in await self._rows.rows(post_ids, viewer_id, tx)}
        plan = _Plan(rows, exclude_muted)
        chosen: list[str] = []
        for post_id in dict.fromkeys(post_ids):
            if plan.shown(post_id):
                chosen.append(post_id)
        media = await self._media_of(plan.with_media(chosen)) if tx is None else {}
        return [plan.build(post_id, media) for post_id in chosen]

    async def _media_of(self, post_ids: list[str]) -> Mapping[str, list[Media]]:
        if not post_ids or self._media is None:
            return {}
        return await self._media(post_ids)


class _Plan:
    """Which rows make it into the answer, and how they nest."""

    def __init__(self, rows: Mapping[str, PostRow], exclude_muted: bool) -> None:
        self.rows = rows
        self.exclude_muted = exclude_muted

    def visible(self, post_id: str | None) -> PostRow | None:
        row = self.rows.get(post_id) if post_id is not None else None
        if row is None or row.deleted or row.hidden:
            return None
        return row

    def shown(self, post_id: str) -> bool:
        row = self.visible(post_id)
        if row is None or (self.exclude_muted and row.muted):
            return False
        if row.repost_of_id is None:
            return True
        original = self.visible(row.repost_of_id)
        return original is not None and not (self.exclude_muted and original.muted)

    def with_media(self, chosen: list[str]) -> list[str]:
        """Every post that will appear (at any depth) and has media."""
        seen: dict[str, None] = {}
        for post_id in chosen:
            for row in self._nested(self.rows[post_id]):
                if row.has_media:
                    seen.setdefault(row.id)
        return list(seen)

    def _nested(self, row: PostRow) -> list[PostRow]:
        found = [row]
        if (original := self.visible(row.repost_of_id)) is not None:
            found.append(original)
            row = original
        if (quoted := self.visible(row.quote_of_id)) is not None:
            found.append(quoted)
        return found

    def build(self, post_id: str, media: Mapping[str, list[Media]]) -> Post:
        row = self.rows[post_id]
        if row.repost_of_id is None:
            return _post(row, media, quote_of=self._leaf(row.quote_of_id, media))
        original = self.rows[row.repost_of_id]
        inner = _post(original, media, quote_of=self._leaf(original.quote_of_id, media))
        return _post(row, media, repost_of=inner, counters=original)

    def _leaf(self, post_id: str | None, media: Mapping[str, list[Media]]) -> Post | None:
        row = self.visible(post_id)
        return _post(row, media) if row is not None else None


def _post(row: PostRow, media: Mapping[str, list[Media]], *, quote_of: Post | None = None,
          repost_of: Post | None = None, counters: PostRow | None = None) -> Post:
    source = counters or row
    return Post(
        id=row.id,
        author=UserSummary(id=row.author_id, username=row.username,
                           display_name=row.display_name),
        text=row.text,
        media=list(media.get(row.id, ())),
        created_at=row.created_at,
        reply_to_id=row.reply_to_id,
        quote_of=quote_of,
        repost_of=repost_of,
        like_count=source.like_count,
        comment_count=source.comment_count,
        repost_count=source.repost_count,
        liked_by_me=source.liked_by_me,
        reposted_by_me=source.reposted_by_me,
        quote_count=source.quote_count,
        reply_count=source.reply_count,
        view_count=source.view_count,
    )
