"""Scheduled posts against `hubbub serve`: a post scheduled 2 s ahead is published on time,
reaches followers' feeds and tells its author live; reschedule, cancel and publish now; DST
resolution and bad input; the rules' 409 with the next free slot; a failing post lands in the
dead-letter queue with its attempts, is retried and cancelled; nobody else sees any of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from tests.e2e.live import Account, Live, signup
from tests.support.images import png
from tests.support.polling import eventually
from tests.support.server import HubbubProcess

PUSH_DEADLINE = 20.0  # through the scheduler, the outbox relay and the consumers


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def call(http: aiohttp.ClientSession, method: str, path: str, who: Account,
               expect: int, body: Any = None, **params: str) -> Any:
    async with http.request(method, path, json=body, headers=who.auth,
                            params=params or None) as response:
        assert response.status == expect, (method, path, await response.text())
        return await response.json(content_type=None) if response.status != 204 else None


async def schedule(http: aiohttp.ClientSession, who: Account, expect: int = 201,
                   **body: Any) -> Any:
    return await call(http, "POST", "/v1/scheduled_posts", who, expect,
                      {"text": f"scheduled {uuid.uuid4().hex[:6]}", **body})


async def wait_status(http: aiohttp.ClientSession, who: Account, post_id: str,
                      status: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        found.update(await call(http, "GET", f"/v1/scheduled_posts/{post_id}", who, 200))
        return found["status"] == status

    await eventually(reached, PUSH_DEADLINE, f"scheduled post {post_id} to be {status}")
    return found


async def test_a_post_scheduled_ahead_is_published_to_feeds_and_the_author_told_live(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "planner"), await signup(http, "reader")
    await call(http, "POST", f"/v1/users/{ann.id}/follow", bob, 200)
    author = await Live.connect(hubbub.base_url, ann.token)
    reader = await Live.connect(hubbub.base_url, bob.token)
    due = datetime.now(UTC) + timedelta(seconds=2)
    created = await schedule(http, ann, text="Good morning, planned", scheduled_for=iso(due),
                             timezone="Europe/Paris", priority="high")
    assert created["status"] == "scheduled" and created["resolution"] == "exact"
    assert created["priority"] == "high" and created["timezone"] == "Europe/Paris"
    assert parse(created["scheduled_for"]) == due.replace(microsecond=due.microsecond)
    assert created["targets"] == [{"kind": "hubbub", "connection_id": None,
                                   "status": "pending", "attempts": 0, "last_error": None,
                                   "last_error_code": None, "external_id": None, "url": None,
                                   "next_attempt_at": None, "published_at": None}]
    assert created["post_id"] is None

    pushed = await author.expect("notification",
                                 lambda d: d["notification"]["kind"] == "post_published",
                                 timeout=PUSH_DEADLINE)
    notification = pushed["notification"]
    assert notification["actor"] is None
    assert notification["data"] == {"scheduled_post_id": created["id"]}
    done = await call(http, "GET", f"/v1/scheduled_posts/{created['id']}", ann, 200)
    assert done["status"] == "published" and done["post_id"] == notification["post_id"]
    assert done["targets"][0]["status"] == "published"
    assert done["targets"][0]["external_id"] == done["post_id"]
    lateness = (parse(done["published_at"]) - parse(done["scheduled_for"])).total_seconds()
    assert 0 <= lateness < 1.5, lateness
    # The normal path: followers' feeds (pushed live too), the post itself.
    await reader.expect("feed:new", lambda d: d["post"]["id"] == done["post_id"],
                        timeout=PUSH_DEADLINE)
    feed = await call(http, "GET", "/v1/feed", bob, 200)
    assert done["post_id"] in [p["id"] for p in feed["items"]]
    post = await call(http, "GET", f"/v1/posts/{done['post_id']}", bob, 200)
    assert post["text"] == "Good morning, planned" and post["author"]["id"] == ann.id
    attempts = await call(http, "GET", f"/v1/scheduled_posts/{created['id']}/attempts", ann,
                          200)
    assert [(a["kind"], a["outcome"], a["attempt"]) for a in attempts["items"]] == [
        ("hubbub", "published", 1)]
    for live in (author, reader):
        await live.close()


async def test_reschedule_cancel_and_publish_now(http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "planner")
    later = datetime.now(UTC) + timedelta(days=2)
    post = await schedule(http, ann, scheduled_for=iso(later))
    path = f"/v1/scheduled_posts/{post['id']}"

    # Reschedule to a wall time in New York, and edit the text.
    moved = await call(http, "PATCH", path, ann, 200, {
        "scheduled_for": (later + timedelta(days=1)).strftime("%Y-%m-%dT09:15:00"),
        "timezone": "America/New_York", "text": "edited"})
    assert moved["text"] == "edited" and moved["timezone"] == "America/New_York"
    assert moved["local_time"].endswith("T09:15:00")
    assert moved["requested_local_time"] == moved["local_time"]
    assert parse(moved["scheduled_for"]) > later
    listed = await call(http, "GET", "/v1/scheduled_posts", ann, 200, status="scheduled")
    assert [p["id"] for p in listed["items"]] == [post["id"]]
    window = await call(http, "GET", "/v1/scheduled_posts", ann, 200,
                        **{"from": iso(later - timedelta(hours=1)),
                           "to": iso(later + timedelta(hours=1))})
    assert window["items"] == []  # it moved out of that window

    cancelled = await call(http, "DELETE", path, ann, 200)
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"]
    assert cancelled["targets"][0]["status"] == "cancelled"
    problem = await call(http, "PATCH", path, ann, 409, {"text": "too late"})
    assert problem["code"] == "not_editable"
    assert (await call(http, "DELETE", path, ann, 409))["code"] == "not_cancellable"
    assert (await call(http, "POST", f"{path}/publish", ann, 409))["code"] == "not_publishable"

    # Publish now: a post due in a week goes out at once.
    soon = await schedule(http, ann, scheduled_for=iso(later + timedelta(days=5)))
    accepted = await call(http, "POST", f"/v1/scheduled_posts/{soon['id']}/publish", ann, 202)
    assert parse(accepted["scheduled_for"]) <= datetime.now(UTC)
    done = await wait_status(http, ann, soon["id"], "published")
    assert done["post_id"]
    assert (await call(http, "DELETE", f"/v1/scheduled_posts/{soon['id']}", ann, 409)
            )["code"] == "not_cancellable"
    published = await call(http, "GET", "/v1/scheduled_posts", ann, 200, status="published")
    assert [p["id"] for p in published["items"]] == [soon["id"]]


async def test_daylight_saving_and_bad_times(http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "planner")
    year = datetime.now(UTC).year + 1
    # Second Sunday of March: New York skips 02:00-03:00.
    march = datetime(year, 3, 8)
    gap_day = march + timedelta(days=(6 - march.weekday()) % 7)
    gap = gap_day.strftime("%Y-%m-%dT02:30:00")
    shifted = await schedule(http, ann, scheduled_for=gap, timezone="America/New_York")
    assert shifted["resolution"] == "shifted_forward"
    assert shifted["requested_local_time"] == gap
    assert shifted["local_time"] == gap_day.strftime("%Y-%m-%dT03:30:00")
    assert parse(shifted["scheduled_for"]) == datetime(
        gap_day.year, gap_day.month, gap_day.day, 7, 30, tzinfo=UTC)
    refused = await schedule(http, ann, 422, scheduled_for=gap, timezone="America/New_York",
                             nonexistent="reject")
    assert refused["code"] == "nonexistent_local_time"
    # First Sunday of November: 01:30 happens twice.
    november = datetime(year, 11, 1)
    overlap_day = november + timedelta(days=(6 - november.weekday()) % 7)
    overlap = overlap_day.strftime("%Y-%m-%dT01:30:00")
    later = await schedule(http, ann, scheduled_for=overlap, timezone="America/New_York",
                           ambiguous="later")
    assert later["resolution"] == "later_of_two"
    assert parse(later["scheduled_for"]).hour == 6  # EST, UTC-5

    past = iso(datetime.now(UTC) - timedelta(minutes=1))
    soon = iso(datetime.now(UTC) + timedelta(days=10))
    cases = [({"scheduled_for": past}, "time_in_past"),
             ({"scheduled_for": "2030-01-01T09:00:00", "timezone": "Mars/Olympus"},
              "unknown_timezone"),
             ({"scheduled_for": "2030-01-01T09:00:00"}, "timezone_required"),
             ({"scheduled_for": iso(datetime.now(UTC) + timedelta(days=400))},
              "too_far_ahead"),
             ({"scheduled_for": soon, "targets": [{"kind": "sms"}]}, None),
             ({"scheduled_for": soon, "media_ids": [str(uuid.uuid4())]}, "invalid_media")]
    for body, code in cases:
        problem = await schedule(http, ann, 422, **body)
        assert problem["code"] == (code or "invalid"), (body, problem)
    malformed = await schedule(http, ann, 422, scheduled_for="tomorrow")
    assert malformed["errors"][0]["field"] == "scheduled_for"


async def test_the_rules_refuse_with_the_next_free_slot(http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "planner")
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    await schedule(http, ann, scheduled_for=iso(first))
    problem = await schedule(http, ann, 409, scheduled_for=iso(first + timedelta(seconds=10)))
    assert problem["code"] == "schedule_min_interval"
    assert parse(problem["next_free_slot"]) == first + timedelta(seconds=60)  # the default
    await schedule(http, ann, scheduled_for=problem["next_free_slot"])


async def test_a_failing_post_goes_to_the_dead_letters_then_is_retried_and_cancelled(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "planner")
    author = await Live.connect(hubbub.base_url, ann.token)
    async with http.post("/v1/media", data=_image_form(), headers=ann.auth) as response:
        assert response.status == 201, await response.text()
        media = await response.json()
    due = datetime.now(UTC) + timedelta(seconds=2)
    post = await schedule(http, ann, scheduled_for=iso(due), media_ids=[media["id"]])
    # The upload goes into an ordinary post first: when the scheduled one is published, its
    # media is no longer free, which is a permanent failure (not retried).
    await call(http, "POST", "/v1/posts", ann, 201, {"text": "now", "media_ids": [media["id"]]})

    pushed = await author.expect("notification",
                                 lambda d: d["notification"]["kind"] == "post_failed",
                                 timeout=PUSH_DEADLINE)
    assert pushed["notification"]["data"]["scheduled_post_id"] == post["id"]
    assert pushed["notification"]["data"]["failed_targets"] == ["hubbub"]
    failed = await call(http, "GET", f"/v1/scheduled_posts/{post['id']}", ann, 200)
    assert failed["status"] == "failed" and failed["failed_at"]
    assert failed["targets"][0]["last_error_code"] == "invalid_media"
    letters = await call(http, "GET", "/v1/scheduled_posts/dead_letters", ann, 200)
    [letter] = letters["items"]
    assert letter["scheduled_post"]["id"] == post["id"]
    assert [(a["kind"], a["outcome"], a["error_code"]) for a in letter["attempts"]] == [
        ("hubbub", "permanent", "invalid_media")]

    retried = await call(http, "POST", f"/v1/scheduled_posts/{post['id']}/retry", ann, 202)
    assert retried["status"] in ("publishing", "failed")
    await author.expect("notification", lambda d: d["notification"]["kind"] == "post_failed",
                        timeout=PUSH_DEADLINE)
    again = await wait_status(http, ann, post["id"], "failed")
    attempts = await call(http, "GET", f"/v1/scheduled_posts/{post['id']}/attempts", ann, 200)
    assert len(attempts["items"]) == 2
    assert again["targets"][0]["attempts"] == 1  # the retry was a new round

    cancelled = await call(http, "DELETE", f"/v1/scheduled_posts/{post['id']}", ann, 200)
    assert cancelled["status"] == "cancelled"
    letters = await call(http, "GET", "/v1/scheduled_posts/dead_letters", ann, 200)
    assert letters["items"] == []
    assert (await call(http, "POST", f"/v1/scheduled_posts/{post['id']}/retry", ann, 409)
            )["code"] == "not_retryable"
    await author.close()


async def test_nobody_else_sees_or_touches_your_scheduled_posts(
        http: aiohttp.ClientSession) -> None:
    ann, eve = await signup(http, "planner"), await signup(http, "snoop")
    post = await schedule(http, ann, scheduled_for=iso(datetime.now(UTC) + timedelta(days=1)))
    path = f"/v1/scheduled_posts/{post['id']}"
    for method, suffix, body in [("GET", "", None), ("PATCH", "", {"text": "mine now"}),
                                 ("DELETE", "", None), ("POST", "/publish", None),
                                 ("POST", "/retry", None), ("GET", "/attempts", None)]:
        problem = await call(http, method, path + suffix, eve, 404, body)
        assert problem["code"] == "scheduled_post_not_found", (method, suffix)
    assert (await call(http, "GET", "/v1/scheduled_posts", eve, 200))["items"] == []
    assert (await call(http, "GET", "/v1/scheduled_posts/dead_letters", eve, 200)
            )["items"] == []
    assert (await call(http, "GET", "/v1/scheduled_posts/not-an-id", ann, 404)
            )["code"] == "scheduled_post_not_found"
    still = await call(http, "GET", path, ann, 200)
    assert still["status"] == "scheduled" and still["text"] == post["text"]
    async with http.get("/v1/scheduled_posts") as response:
        assert response.status == 401


def _image_form() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", png(), filename="photo.png", content_type="image/png")
    return form
