"""Posts through a real server, what they carry: an Idempotency-Key replays the first answer
and creates nothing; images in a multipart post or by media id (each usable once); a
multipart post with one bad part is refused whole."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp

from tests.e2e.test_posts import no_server_errors, post  # noqa: F401 (the autouse guard)
from tests.e2e.test_users_graph import Account, call, signup
from tests.support.images import png
from tests.support.server import HubbubProcess


def form(text: str, files: list[bytes], **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    data.add_field("text", text)
    for name, value in fields.items():
        data.add_field(name, value)
    for i, content in enumerate(files):
        data.add_field("files", content, filename=f"image{i}.png", content_type="image/png")
    return data


async def post_count(http: aiohttp.ClientSession, who: Account) -> int:
    return (await call(http, "GET", "/v1/users/me/stats", who, 200))["posts"]


async def test_idempotency_key_replay_creates_nothing(http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "ann")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    bodies = []
    for _ in range(2):
        async with http.post("/v1/posts", json={"text": "exactly once"},
                             headers={**ann.auth, **key}) as response:
            assert response.status == 201
            bodies.append((await response.json(), response.headers.get("Idempotent-Replayed")))
    assert bodies[0][0]["id"] == bodies[1][0]["id"] and bodies[1][1] == "true"
    assert bodies[0][1] is None
    racing = {"Idempotency-Key": uuid.uuid4().hex}

    async def attempt() -> str:
        async with http.post("/v1/posts", json={"text": "racing"},
                             headers={**ann.auth, **racing}) as response:
            assert response.status == 201, await response.text()
            return (await response.json())["id"]

    assert len(set(await asyncio.gather(*(attempt() for _ in range(8))))) == 1
    assert await post_count(http, ann) == 2
    async with http.post("/v1/posts", json={"text": "another body"},
                         headers={**ann.auth, **key}) as response:
        assert response.status == 422
        assert (await response.json(content_type=None))["code"] == "idempotency_key_reused"
    async with http.post("/v1/posts", json={"text": "bad key"},
                         headers={**ann.auth, "Idempotency-Key": "has space"}) as response:
        assert response.status == 400
    assert await post_count(http, ann) == 2


async def test_post_with_images_is_readable_with_its_media(http: aiohttp.ClientSession,
                                                           hubbub: HubbubProcess) -> None:
    ann, bob = await signup(http, "ann"), await signup(http, "bob")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    images = [png(40, 20), png(30, 30)]
    created = []
    for _ in range(2):  # the retry replays the first result and uploads nothing new
        async with http.post("/v1/posts", data=form("two pictures", images),
                             headers={**ann.auth, **key}) as response:
            assert response.status == 201, await response.text()
            created.append(await response.json())
    assert created[0]["id"] == created[1]["id"]
    assert [m["id"] for m in created[0]["media"]] == [m["id"] for m in created[1]["media"]]
    seen = await call(http, "GET", f"/v1/posts/{created[0]['id']}", bob, 200)
    assert [(m["width"], m["height"], m["content_type"]) for m in seen["media"]] == [
        (40, 20, "image/png"), (30, 30, "image/png")]
    async with http.get(seen["media"][0]["url"]) as response:
        assert response.status == 200 and (await response.read()).startswith(b"\x89PNG")
    assert await post_count(http, ann) == 1

    # The uploads went to that post: attaching one again is refused.
    problem = await post(http, ann, "reuse", 422, media_ids=[seen["media"][0]["id"]])
    assert problem["code"] == "invalid_media"
    async with http.post("/v1/media", data=_single(png(12, 12)), headers=ann.auth) as response:
        assert response.status == 201, await response.text()
        uploaded = await response.json()
    by_id = await post(http, ann, "by id", media_ids=[uploaded["id"]])
    assert [m["id"] for m in by_id["media"]] == [uploaded["id"]]
    problem = await post(http, bob, "not mine", 422, media_ids=[str(uuid.uuid4())])
    assert problem["code"] == "invalid_media"

    filtered = await call(http, "GET", "/v1/posts", bob, 200,
                          params={"author": ann.id, "has_media": "true"})
    assert sorted(p["id"] for p in filtered["items"]) == sorted([by_id["id"], seen["id"]])


def _single(content: bytes) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("file", content, filename="x.png", content_type="image/png")
    return data


async def test_multipart_posts_are_refused_whole(http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "ann")
    small = png(8, 8)
    cases = [(form("eleven", [small] * 11), 422, "too_many_files"),
             (form("not an image", [b"MZ\x90\x00" + b"\x00" * 100]), 415, None),
             (form("", [small]), 422, None),
             (form("x", [small], colour="red"), 422, None)]
    for data, status, code in cases:
        async with http.post("/v1/posts", data=data, headers=ann.auth) as response:
            assert response.status == status, await response.text()
            if code:
                assert (await response.json(content_type=None))["code"] == code
    assert await post_count(http, ann) == 0
    text_only = await call(http, "POST", "/v1/posts", ann, 201, data=form("just text", []))
    assert text_only["media"] == [] and text_only["text"] == "just text"
