"""The pure parts of reading a feed: merging id lists and deciding what a viewer sees."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from protocols.posts import Post


def merge_newest(sources: Iterable[Sequence[str]], limit: int) -> list[str]:
    """The union of several id lists, each id once, newest (greatest UUIDv7) first, at most
    `limit` long. If every source holds the newest `limit` ids of its own set below some
    bound, the result is the newest `limit` ids of the union below that bound."""
    return sorted(set().union(*sources), reverse=True)[:limit]


def authors_of(posts: Iterable[Post]) -> set[str]:
    """Everyone whose content a list of posts shows: authors, and the reposted authors."""
    found: set[str] = set()
    for post in posts:
        found.add(post.author.id)
        if post.repost_of is not None:
            found.add(post.repost_of.author.id)
    return found


def visible(posts: Iterable[Post], viewer_id: str, *, following: frozenset[str],
            hidden: frozenset[str], require_follow: bool) -> list[Post]:
    """The posts the viewer gets to see, in the order given.

    Never a post by, or a repost of, someone hidden (a block either way, or muted). With
    require_follow (the home feed), only the viewer's own posts and those of people the
    viewer follows now: an unfollow takes effect on the next read, whatever timelines hold.
    """
    shown = []
    for post in posts:
        author = post.author.id
        if author in hidden:
            continue
        if post.repost_of is not None and post.repost_of.author.id in hidden:
            continue
        if require_follow and author != viewer_id and author not in following:
            continue
        shown.append(post)
    return shown
