"""PostService and EngagementService rules over in-memory ports: permissions, the daily limit,
reposts, likes, mentions, visibility, hydration and views."""

from __future__ import annotations

import pytest

from protocols.common import PageQuery
from protocols.events import (
    CommentCreated,
    PostCreated,
    PostDeleted,
    PostLiked,
    PostReposted,
    PostUnliked,
)
from protocols.ids import new_id
from protocols.posts import CommentCreate, PostCreate, PostSearch
from protocols.roles import Role
from server.auth.principal import Principal
from server.http.problems import (
    BadRequest,
    Forbidden,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from server.posts.engagement import EngagementService
from server.posts.mentions import MAX_MENTIONS, mentioned_names
from server.posts.reader import PostReader
from server.posts.service import PostService
from server.posts.views import ViewCounter
from server.users.service import UserService
from tests.unit.fakes_posts import (
    MemoryCommentStore,
    MemoryLikeStore,
    MemoryPostIndex,
    MemoryPostRows,
    MemoryPostStore,
    PostWorld,
    events_of,
)
from tests.unit.fakes_users import MemoryGraphStore, MemoryProfileStore, World

DAILY_LIMIT = 3


class Scene:
    def __init__(self) -> None:
        self.users = World()
        self.world = PostWorld(users=self.users)
        self.store = MemoryPostStore(self.world)
        self.rows = MemoryPostRows(self.world)
        self.reader = PostReader(self.rows)
        self.views = ViewCounter(self.store)
        self.graph = MemoryGraphStore(self.users)
        self.service = PostService(
            posts=self.store, index=MemoryPostIndex(self.world), reader=self.reader,
            users=UserService(MemoryProfileStore(self.users), self.graph), views=self.views,
            daily_limit=DAILY_LIMIT)
        self.engagement = EngagementService(posts=self.store,
                                            likes=MemoryLikeStore(self.world),
                                            comments=MemoryCommentStore(self.world))

    def user(self, username: str, role: Role = "user") -> Principal:
        user_id = self.users.add_user(username, role)
        return Principal(user_id=user_id, role=role, token_id="t", expires_at=0)

    async def post(self, who: Principal, text: str = "hello", **kw: object) -> str:
        return (await self.service.create(who, PostCreate(text=text, **kw))).id  # type: ignore[arg-type]


@pytest.fixture
def scene() -> Scene:
    return Scene()


# Mentions


@pytest.mark.parametrize(("text", "names"), [
    ("hi @Ann and @bob!", ["ann", "bob"]),
    ("@ann @ANN @Ann", ["ann"]),
    ("(@ann) [@bob_2], @carl.", ["ann", "bob_2", "carl"]),
    ("mail bob@ann.example or @@ann", []),
    ("@ab is too short, @" + "x" * 31 + " too long", []),
    ("@" + "x" * 30, ["x" * 30]),
    ("no mentions at all", []),
])
def test_mentioned_names(text: str, names: list[str]) -> None:
    assert mentioned_names(text) == names


def test_mentions_are_bounded() -> None:
    text = " ".join(f"@user_{i:03d}" for i in range(MAX_MENTIONS + 5))
    assert len(mentioned_names(text)) == MAX_MENTIONS


async def test_created_event_mentions_known_visible_users_only(scene: Scene) -> None:
    ann, bob, carl, dan = (scene.user(n) for n in ("ann", "Bob", "carl", "dan"))
    await scene.graph.block(dan.user_id, ann.user_id)  # dan blocks the author
    post_id = await scene.post(ann, "hey @bob @BOB @carl @ann @dan @nobody")
    [event] = events_of(scene.world, PostCreated)
    assert isinstance(event, PostCreated)
    assert event.post_id == post_id and event.author_id == ann.user_id
    assert event.mentioned_user_ids == [bob.user_id, carl.user_id]


# Create


async def test_create_returns_the_hydrated_post(scene: Scene) -> None:
    ann = scene.user("ann")
    post = await scene.service.create(ann, PostCreate(text="first"))
    assert (post.author.id, post.author.username, post.text) == (ann.user_id, "ann", "first")
    assert post.media == [] and post.quote_of is None and post.repost_of is None
    assert (post.like_count, post.liked_by_me, post.reposted_by_me) == (0, False, False)


async def test_reply_and_quote_of_a_repost_point_at_the_original(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    original = await scene.post(ann, "original")
    repost, _ = await scene.service.repost(bob, original)
    reply = await scene.service.create(bob, PostCreate(text="re", reply_to_id=repost.id))
    quote = await scene.service.create(bob, PostCreate(text="q", quote_of_id=repost.id.upper()))
    assert reply.reply_to_id == original
    assert quote.quote_of is not None and quote.quote_of.id == original
    assert quote.quote_of.quote_of is None  # one level deep
    created = [e for e in events_of(scene.world, PostCreated)
               if isinstance(e, PostCreated) and e.author_id == bob.user_id]
    assert created[0].reply_to_author_id == ann.user_id and created[0].quote_of_id is None
    assert created[1].quote_of_author_id == ann.user_id
    stored = scene.world.posts[original]
    assert (stored.reply_count, stored.quote_count, stored.repost_count) == (1, 1, 1)


async def test_reply_to_a_missing_deleted_or_hidden_post_is_422(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    deleted = await scene.post(bob, "gone")
    await scene.service.delete(bob, deleted)
    hidden = await scene.post(bob, "hidden")
    await scene.graph.block(bob.user_id, ann.user_id)
    for target in (new_id(), deleted, hidden):
        with pytest.raises(ValidationFailed) as caught:
            await scene.service.create(ann, PostCreate(text="re", reply_to_id=target))
        assert caught.value.code == "reply_not_found"
        with pytest.raises(ValidationFailed) as caught:
            await scene.service.create(ann, PostCreate(text="q", quote_of_id=target))
        assert caught.value.code == "quote_not_found"
    assert len(events_of(scene.world, PostCreated)) == 2  # bob's two posts only


async def test_daily_limit_refuses_with_retry_after(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    first = await scene.post(ann, "one")
    await scene.post(ann, "two")
    await scene.service.delete(ann, first)  # deleting does not give the allowance back
    await scene.service.repost(ann, await scene.post(bob))  # reposts do not count
    await scene.post(ann, "three")
    with pytest.raises(RateLimited) as caught:
        await scene.post(ann, "four")
    assert caught.value.code == "daily_limit"
    assert 0 < caught.value.retry_after <= 24 * 3600
    assert len([e for e in events_of(scene.world, PostCreated)
                if isinstance(e, PostCreated) and e.author_id == ann.user_id]) == DAILY_LIMIT
    await scene.post(bob, "bob is not limited by ann")


# Delete


@pytest.mark.parametrize("role", ["moderator", "admin"])
async def test_moderators_and_admins_may_delete_any_post(scene: Scene, role: Role) -> None:
    ann, staff = scene.user("ann"), scene.user("staff", role)
    post_id = await scene.post(ann)
    await scene.graph.block(ann.user_id, staff.user_id)  # a block does not stop moderation
    await scene.service.delete(staff, post_id)
    [event] = events_of(scene.world, PostDeleted)
    assert isinstance(event, PostDeleted) and event.deleted_by == staff.user_id
    with pytest.raises(NotFound):
        await scene.service.get(ann, post_id)


async def test_only_the_author_deletes_and_unknown_is_404(scene: Scene) -> None:
    ann, bob, carl = scene.user("ann"), scene.user("bob"), scene.user("carl")
    post_id = await scene.post(ann)
    with pytest.raises(Forbidden) as caught:
        await scene.service.delete(bob, post_id)
    assert caught.value.code == "not_author"
    await scene.graph.block(ann.user_id, carl.user_id)
    with pytest.raises(NotFound):  # hidden from carl: not even a 403
        await scene.service.delete(carl, post_id)
    for ref in (new_id(), "nope", post_id + "\n"):
        with pytest.raises(NotFound):
            await scene.service.delete(ann, ref)
    await scene.service.delete(ann, post_id.upper())
    with pytest.raises(NotFound):
        await scene.service.delete(ann, post_id)
    assert len(events_of(scene.world, PostDeleted)) == 1


# Reposts


async def test_repost_is_idempotent_and_reposting_a_repost_reposts_the_original(
    scene: Scene,
) -> None:
    ann, bob, carl = scene.user("ann"), scene.user("bob"), scene.user("carl")
    original = await scene.post(ann, "orig")
    first, created = await scene.service.repost(bob, original)
    again, created_again = await scene.service.repost(bob, original)
    assert created and not created_again and again.id == first.id
    assert first.repost_of is not None and first.repost_of.id == original
    assert first.reposted_by_me and first.repost_count == 1  # mirrors the original
    via_repost, _ = await scene.service.repost(carl, first.id)
    assert via_repost.repost_of is not None and via_repost.repost_of.id == original
    assert scene.world.posts[original].repost_count == 2
    assert len(events_of(scene.world, PostReposted)) == 2

    await scene.service.unrepost(bob, original)
    await scene.service.unrepost(bob, original)  # idempotent: no second event
    assert scene.world.posts[original].repost_count == 1
    assert len(events_of(scene.world, PostDeleted)) == 1
    renewed, created = await scene.service.repost(bob, original)
    assert created and renewed.id != first.id


async def test_repost_of_a_hidden_or_deleted_post_is_404(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    post_id = await scene.post(ann)
    await scene.graph.block(bob.user_id, ann.user_id)
    with pytest.raises(NotFound):
        await scene.service.repost(bob, post_id)
    await scene.service.delete(ann, post_id)
    with pytest.raises(NotFound):
        await scene.service.repost(ann, post_id)
    with pytest.raises(NotFound):
        await scene.service.unrepost(ann, new_id())


# Likes and comments


async def test_likes_are_idempotent_and_evented_once(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    post_id = await scene.post(ann)
    repost, _ = await scene.service.repost(bob, post_id)
    for _ in range(3):
        state = await scene.engagement.like(bob, repost.id)  # goes to the original
        assert (state.liked, state.like_count) == (True, 1)
    assert len(events_of(scene.world, PostLiked)) == 1
    assert (await scene.service.get(bob, post_id)).liked_by_me
    for _ in range(2):
        state = await scene.engagement.unlike(bob, post_id)
        assert (state.liked, state.like_count) == (False, 0)
    assert len(events_of(scene.world, PostUnliked)) == 1


async def test_likers_page_newest_first(scene: Scene) -> None:
    ann = scene.user("ann")
    post_id = await scene.post(ann)
    fans = [scene.user(f"fan{i}") for i in range(5)]
    for fan in fans:
        await scene.engagement.like(fan, post_id)
    first = await scene.engagement.likers(ann, post_id, PageQuery(limit=3))
    assert [u.username for u in first.items] == ["fan4", "fan3", "fan2"]
    assert first.next_cursor is not None
    rest = await scene.engagement.likers(ann, post_id,
                                         PageQuery(limit=3, cursor=first.next_cursor))
    assert [u.username for u in rest.items] == ["fan1", "fan0"] and rest.next_cursor is None


async def test_comments_oldest_first_with_mentions(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    post_id = await scene.post(ann)
    for i in range(3):
        await scene.engagement.comment(bob, post_id, CommentCreate(text=f"c{i} @ann"))
    page = await scene.engagement.comments(ann, post_id, PageQuery(limit=2))
    rest = await scene.engagement.comments(ann, post_id,
                                           PageQuery(limit=2, cursor=page.next_cursor))
    assert len(page.items) == 2 and len(rest.items) == 1 and rest.next_cursor is None
    shown = [c.id for c in page.items + rest.items]
    assert shown == sorted(shown)  # oldest (smallest id) first
    assert sorted(c.text for c in page.items + rest.items) == ["c0 @ann", "c1 @ann", "c2 @ann"]
    events = events_of(scene.world, CommentCreated)
    assert len(events) == 3 and all(isinstance(e, CommentCreated)
                                    and e.mentioned_user_ids == [ann.user_id]
                                    and e.post_author_id == ann.user_id for e in events)
    assert (await scene.service.metrics(ann, post_id)).comments == 3
    with pytest.raises(BadRequest):
        await scene.engagement.comments(ann, post_id, PageQuery(cursor="garbage"))


# Visibility and hydration


async def test_blocked_posts_are_404_and_muted_ones_only_leave_lists(scene: Scene) -> None:
    ann, bob, carl = scene.user("ann"), scene.user("bob"), scene.user("carl")
    bob_post = await scene.post(bob, "from bob")
    carl_post = await scene.post(carl, "from carl")
    await scene.graph.block(bob.user_id, ann.user_id)
    await scene.graph.mute(ann.user_id, carl.user_id)
    with pytest.raises(NotFound):
        await scene.service.get(ann, bob_post)
    with pytest.raises(NotFound):
        await scene.engagement.like(ann, bob_post)
    assert (await scene.service.get(ann, carl_post)).text == "from carl"
    assert (await scene.service.search(ann, PostSearch())).items == []
    by_name = await scene.service.search(ann, PostSearch(author="@Carl"))
    assert [p.id for p in by_name.items] == [carl_post]
    assert (await scene.service.search(ann, PostSearch(author="@bob"))).items == []
    with pytest.raises(ValidationFailed):
        await scene.service.search(ann, PostSearch(author="bob"))


async def test_get_many_keeps_order_drops_invisible_in_one_query(scene: Scene) -> None:
    ann, bob, carl = scene.user("ann"), scene.user("bob"), scene.user("carl")
    quoted = await scene.post(carl, "quoted")
    quote = await scene.post(ann, "quote", quote_of_id=quoted)
    plain = await scene.post(ann, "plain")
    repost_of_quote, _ = await scene.service.repost(bob, quote)
    gone = await scene.post(ann, "gone")
    await scene.service.delete(ann, gone)
    scene.rows.calls = 0
    ids = [plain, repost_of_quote.id, gone, quote, new_id(), plain]
    posts = await scene.reader.get_many(ids, bob.user_id)
    assert [p.id for p in posts] == [plain, repost_of_quote.id, quote]
    assert scene.rows.calls == 1
    wrapped = posts[1].repost_of
    assert wrapped is not None and wrapped.quote_of is not None
    assert wrapped.quote_of.id == quoted and posts[1].reposted_by_me

    await scene.graph.mute(bob.user_id, carl.user_id)
    await scene.service.delete(carl, quoted)
    posts = await scene.reader.get_many([quote], bob.user_id)
    assert posts[0].quote_of is None  # deleted quoted post shows as null


async def test_lists_exclude_muted_reposts_when_asked(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    post_id = await scene.post(ann)
    repost, _ = await scene.service.repost(bob, post_id)
    await scene.graph.mute(bob.user_id, ann.user_id)
    assert await scene.reader.get_many([repost.id], bob.user_id, exclude_muted=True) == []
    assert len(await scene.reader.get_many([repost.id], bob.user_id)) == 1


async def test_views_count_readers_other_than_the_author(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    post_id = await scene.post(ann)
    await scene.service.get(ann, post_id)
    for _ in range(3):
        await scene.service.get(bob, post_id)
    repost, _ = await scene.service.repost(bob, post_id)
    await scene.service.get(ann, repost.id)  # ann reading a repost of her own post
    assert (await scene.service.metrics(bob, post_id)).views == 3
    assert scene.world.posts[post_id].view_count == 0
    await scene.views.flush()
    assert scene.world.posts[post_id].view_count == 3
    assert (await scene.service.metrics(bob, post_id)).views == 3


async def test_search_pages_newest_first(scene: Scene) -> None:
    ann = scene.user("ann")
    # Newest first is id order; ids minted within one millisecond are ordered by their
    # random bits, so compare with the sorted ids rather than the creation order.
    ids = sorted([await scene.post(ann, f"post number {i}") for i in range(3)], reverse=True)
    first = await scene.service.search(ann, PostSearch(limit=2, author="me"))
    assert [p.id for p in first.items] == ids[:2] and first.next_cursor is not None
    second = await scene.service.search(ann, PostSearch(limit=2, author="me",
                                                        cursor=first.next_cursor))
    assert [p.id for p in second.items] == ids[2:] and second.next_cursor is None
    found = await scene.service.search(ann, PostSearch(q="NUMBER post"))
    assert len(found.items) == 3
    assert (await scene.service.search(ann, PostSearch(q="missing"))).items == []


async def test_user_posts_and_stats(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    mine = await scene.post(ann, "mine")
    theirs = await scene.post(bob, "theirs")
    repost, _ = await scene.service.repost(ann, theirs)
    await scene.engagement.like(bob, mine)
    page = await scene.service.by_user(bob, "@ann", PageQuery())
    assert [p.id for p in page.items] == sorted([repost.id, mine], reverse=True)
    stats = await scene.service.user_stats(bob, ann.user_id)
    assert (stats.posts, stats.reposts, stats.likes_received, stats.likes_given) == (1, 1, 1, 0)
    await scene.graph.block(ann.user_id, bob.user_id)
    with pytest.raises(NotFound):
        await scene.service.user_stats(bob, "@ann")
    with pytest.raises(NotFound):
        await scene.service.by_user(bob, ann.user_id, PageQuery())
