"""REST users: what the app does over HTTP for people who mostly read (Reader), who post
(Writer) and who plan posts (Scheduler). Requests are named by route (`name=`), with a
`[variant]` suffix where one route serves different actions (`/v1/posts [quote]`)."""

from __future__ import annotations

import random
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from locust import task
from locust_accounts import fresh, refresh
from locust_images import multipart, random_image
from locust_settings import SETTINGS
from locust_user import SignedUpUser
from locust_world import WORLD

FOLLOWS_AT_START = 3


def tour(user: Any) -> None:
    """Run each task of `user` once, in the order the class defines them (LOADTEST_TOUR)."""
    for function in dict.fromkeys(type(user).tasks):
        function(user)


def original_id(post: dict[str, Any]) -> str:
    """The post a feed item is about: a repost stands for the post it reposts."""
    return post["repost_of"]["id"] if post.get("repost_of") else post["id"]


class RestUser(SignedUpUser):
    """Signs up, follows the celebrity and a few authors, then runs its tasks. Keeps the posts
    and authors it has seen, as the app keeps what is on screen."""

    abstract = True
    pauses: tuple[float, float] = (1.0, 5.0)
    prefix = "lt"

    def on_start(self) -> None:
        self.sign_up()
        self.following: set[str] = set()
        self.seen: deque[str] = deque(maxlen=60)  # post ids
        self.seen_authors: deque[str] = deque(maxlen=30)
        self.liked: set[str] = set()
        self.started()
        if WORLD.celebrity is not None:
            self.follow_user(WORLD.celebrity.user_id)
        for _ in range(FOLLOWS_AT_START):
            other = WORLD.someone(self.me, WORLD.authors)
            if other is not None and other not in self.following:
                self.follow_user(other)
        WORLD.followers.add(self)
        if SETTINGS.tour:
            tour(self)

    def started(self) -> None:
        """Subclasses: what to do right after signing up."""

    def on_stop(self) -> None:
        WORLD.followers.discard(self)

    @property
    def auth(self) -> dict[str, str]:
        return fresh(self.client, self.account)

    def call(self, method: str, path: str, name: str, *, ok: tuple[int, ...] = (200, 201),
             **kwargs: Any) -> Any:
        """One request: its parsed JSON answer ({} for an empty one), or None after reporting
        an unexpected status as a failure."""
        headers = {**self.auth, **kwargs.pop("headers", {})}
        with self.client.request(method, path, name=name, headers=headers,
                                 catch_response=True, **kwargs) as response:
            if response.status_code not in ok:
                response.failure(f"{response.status_code} {(response.text or '')[:200]}")
                return None
            return response.json() if response.text else {}

    # -- shared actions -----------------------------------------------------------------

    def follow_user(self, other: str) -> None:
        if self.call("POST", f"/v1/users/{other}/follow", "/v1/users/{id}/follow") is not None:
            self.following.add(other)

    def remember(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            self.seen.append(original_id(item))
            self.seen_authors.append(item["author"]["id"])

    def a_post(self) -> str | None:
        return random.choice(self.seen) if self.seen else WORLD.recent_post()

    def read_feed(self, name: str = "/v1/feed") -> None:
        page = self.call("GET", "/v1/feed?limit=20", name)
        if page is None:
            return
        self.remember(page["items"])
        if page.get("next_cursor") and random.random() < 0.25:  # scrolls on
            more = self.call("GET", f"/v1/feed?limit=20&cursor={page['next_cursor']}",
                             "/v1/feed?cursor")
            if more is not None:
                self.remember(more["items"])

    def refresh_feed_now(self) -> None:
        """A spike: the celebrity posted and everyone pulls to refresh at once."""
        page = self.call("GET", "/v1/feed?limit=20", "/v1/feed [spike]")
        if page is not None:
            self.remember(page["items"])

    def like_one(self) -> None:
        post = self.a_post()
        if post is not None and self.call("POST", f"/v1/posts/{post}/like",
                                          "/v1/posts/{id}/like") is not None:
            self.liked.add(post)

    def upload_image(self) -> str | None:
        filename, content_type, data = random_image()
        body, content = multipart({}, [("file", filename, content_type, data)])
        media = self.call("POST", "/v1/media", "/v1/media", data=body,
                          headers={"Content-Type": content})
        return media["id"] if media else None

    # -- every REST user -----------------------------------------------------------------

    @task(3)
    def notifications(self) -> None:
        """The badge, the list (listing marks what it returns read), then "mark all read" up to
        the newest, as the app does on leaving the screen (whatever the badge said: listing
        cleared it already, and the test of every task must see this one run)."""
        self.call("GET", "/v1/notifications/unread_count", "/v1/notifications/unread_count")
        page = self.call("GET", "/v1/notifications?limit=20", "/v1/notifications")
        if page and page["items"]:
            self.call("POST", "/v1/notifications/read", "/v1/notifications/read",
                      json={"up_to_id": page["items"][0]["id"]})


class Reader(RestUser):
    """Most people: scroll the home feed and popular, open posts and their comments, look at
    profiles, like now and then, follow and unfollow, check notifications."""

    weight = 12
    pauses = (1.0, 5.0)
    prefix = "reader"

    @task(8)
    def home_feed(self) -> None:
        self.read_feed()

    @task(3)
    def popular(self) -> None:
        page = self.call("GET", "/v1/feed/popular?limit=20", "/v1/feed/popular")
        if page is not None:
            self.remember(page["items"])

    @task(5)
    def open_post(self) -> None:
        post = self.a_post()
        if post is None:
            return
        self.call("GET", f"/v1/posts/{post}", "/v1/posts/{id}")
        self.call("GET", f"/v1/posts/{post}/comments?limit=20", "/v1/posts/{id}/comments")

    @task(2)
    def profile(self) -> None:
        other = (random.choice(self.seen_authors) if self.seen_authors
                 else WORLD.someone(self.me)) or self.me
        self.call("GET", f"/v1/users/{other}", "/v1/users/{id}")
        self.call("GET", f"/v1/users/{other}/posts?limit=20", "/v1/users/{id}/posts")

    @task(1)
    def followers(self) -> None:
        other = WORLD.someone(self.me) or self.me
        self.call("GET", f"/v1/users/{other}/followers?limit=20", "/v1/users/{id}/followers")

    @task(3)
    def like(self) -> None:
        self.like_one()

    @task(1)
    def unlike(self) -> None:
        if self.liked:
            post = random.choice(sorted(self.liked))
            if self.call("DELETE", f"/v1/posts/{post}/like", "/v1/posts/{id}/like") is not None:
                self.liked.discard(post)

    @task(1)
    def follow(self) -> None:
        pool = WORLD.authors if random.random() < 0.7 else WORLD.users
        other = WORLD.someone(self.me, pool)
        if other is not None and other not in self.following:
            self.follow_user(other)

    @task(1)
    def unfollow(self) -> None:
        celebrity = WORLD.celebrity.user_id if WORLD.celebrity else None
        candidates = sorted(self.following - {celebrity})
        if candidates:
            other = random.choice(candidates)
            if self.call("DELETE", f"/v1/users/{other}/follow",
                         "/v1/users/{id}/follow") is not None:
                self.following.discard(other)

    @task(1)
    def me_and_refresh(self) -> None:
        """The app coming back to the foreground: who am I, and a fresh token pair."""
        self.call("GET", "/v1/auth/me", "/v1/auth/me")
        refresh(self.client, self.account)


class Writer(RestUser):
    """People who post: text, pictures (uploaded first, or in the same request), comments,
    likes, reposts and quotes; they read their feed to find something to answer."""

    weight = 3
    pauses = (2.0, 8.0)
    prefix = "writer"

    def started(self) -> None:
        WORLD.authors.append(self.me)
        self.reposted: set[str] = set()

    def create(self, name: str, **kwargs: Any) -> None:
        headers = {"Idempotency-Key": uuid.uuid4().hex, **kwargs.pop("headers", {})}
        post = self.call("POST", "/v1/posts", name, headers=headers, **kwargs)
        if post is not None:
            WORLD.posts.append(post["id"])

    @task(4)
    def feed(self) -> None:
        self.read_feed()

    @task(3)
    def post_text(self) -> None:
        self.create("/v1/posts", json={"text": f"Thinking out loud #{random.randint(1, 999)}"})

    @task(2)
    def post_with_image(self) -> None:
        media_id = self.upload_image()
        if media_id is not None:
            self.create("/v1/posts [with media]",
                        json={"text": "A picture from today", "media_ids": [media_id]})

    @task(1)
    def post_with_files(self) -> None:
        files = [("files", *random_image()) for _ in range(random.randint(1, 2))]
        body, content = multipart({"text": "Two minutes ago"}, files)
        self.create("/v1/posts [multipart]", data=body, headers={"Content-Type": content})

    @task(3)
    def comment(self) -> None:
        post = self.a_post()
        if post is not None:
            self.call("POST", f"/v1/posts/{post}/comments", "/v1/posts/{id}/comments",
                      json={"text": random.choice(["Nice!", "So true", "Where is this?"])})

    @task(2)
    def like(self) -> None:
        self.like_one()

    @task(2)
    def repost(self) -> None:
        post = self.a_post()
        if post is not None and self.call("POST", f"/v1/posts/{post}/repost",
                                          "/v1/posts/{id}/repost") is not None:
            self.reposted.add(post)

    @task(1)
    def unrepost(self) -> None:
        if self.reposted:
            post = random.choice(sorted(self.reposted))
            self.reposted.discard(post)
            self.call("DELETE", f"/v1/posts/{post}/repost", "/v1/posts/{id}/repost",
                      ok=(200, 204))

    @task(1)
    def quote(self) -> None:
        post = self.a_post()
        if post is not None:
            self.create("/v1/posts [quote]", json={"text": "This.", "quote_of_id": post})


class Scheduler(RestUser):
    """Social-media managers: schedule posts (some with a picture), watch their status, list
    what is waiting, cancel some. A 409 of a scheduling rule is answered the way a client
    should: schedule again at the `next_free_slot` it names."""

    weight = 1
    pauses = (2.0, 8.0)
    prefix = "planner"

    def started(self) -> None:
        self.made = 0
        self.planned: deque[tuple[str, datetime]] = deque(maxlen=40)  # (id, scheduled_for)

    @task(3)
    def schedule(self) -> None:
        later = self.made % 3 == 0  # every third one far ahead: those get cancelled
        self.made += 1
        ahead = random.uniform(600, 1800) if later else random.uniform(5, 60)
        body: dict[str, Any] = {
            "text": f"Planned post {uuid.uuid4().hex[:6]}",
            "scheduled_for": _iso(datetime.now(UTC) + timedelta(seconds=ahead)),
            "timezone": random.choice(["UTC", "Europe/Berlin", "America/New_York"]),
            "priority": random.choice(["urgent", "high", "normal", "normal", "low"]),
        }
        if random.random() < 0.3 and (media_id := self.upload_image()) is not None:
            body["media_ids"] = [media_id]
        self.planned_post(body, "/v1/scheduled_posts")

    def planned_post(self, body: dict[str, Any], name: str) -> None:
        with self.client.post("/v1/scheduled_posts", json=body, headers=self.auth, name=name,
                              catch_response=True) as response:
            if response.status_code == 201:
                made = response.json()
                self.planned.append((made["id"], _parse(made["scheduled_for"])))
                return
            problem = response.json() if response.status_code == 409 else {}
            slot = problem.get("next_free_slot")
            if slot is None or name.endswith("]"):
                response.failure(f"{response.status_code} {(response.text or '')[:200]}")
                return
            response.success()  # a rule said "not then": take the slot it offers
        self.planned_post(body | {"scheduled_for": slot}, f"{name} [next free slot]")

    @task(4)
    def status(self) -> None:
        if self.planned:
            post_id, _ = random.choice(self.planned)
            self.call("GET", f"/v1/scheduled_posts/{post_id}", "/v1/scheduled_posts/{id}")

    @task(2)
    def waiting(self) -> None:
        self.call("GET", "/v1/scheduled_posts?status=scheduled&limit=20",
                  "/v1/scheduled_posts?status=")

    @task(1)
    def cancel(self) -> None:
        soon = datetime.now(UTC) + timedelta(seconds=120)
        later = [entry for entry in self.planned if entry[1] > soon]
        if later:
            entry = random.choice(later)
            if self.call("DELETE", f"/v1/scheduled_posts/{entry[0]}",
                         "/v1/scheduled_posts/{id}") is not None:
                self.planned.remove(entry)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
