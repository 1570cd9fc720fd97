"""Media through a real server: uploads validated by content, signed media URLs, presigned
uploads, Idempotency-Key; against the shared server (local-disk store) and a second server
whose store is S3 (moto in server mode)."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from PIL import Image

from tests.e2e.conftest import sibling_server
from tests.support.images import (
    ELF_HEADER,
    EXE_HEADER,
    SECRET_MAKE,
    jpeg_with_exif,
    png,
    png_bomb,
)
from tests.support.s3 import S3Endpoint, moto_s3
from tests.support.server import HubbubProcess

PASSWORD = "correct horse battery"
ELEVEN_MB = 11 * 1024 * 1024


@dataclass(frozen=True)
class Account:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def signup(http: aiohttp.ClientSession) -> Account:
    name = f"media_{uuid.uuid4().hex[:10]}"
    async with http.post("/v1/auth/signup", json={
        "username": name, "email": f"{name}@example.test", "password": PASSWORD,
    }) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    return Account(id=body["user"]["id"], token=body["access_token"])


def form(data: bytes, filename: str = "photo.png", content_type: str = "image/png",
         field: str = "file") -> aiohttp.FormData:
    payload = aiohttp.FormData()
    payload.add_field(field, data, filename=filename, content_type=content_type)
    return payload


async def upload(http: aiohttp.ClientSession, who: Account, data: Any, status: int,
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    payload = form(data) if isinstance(data, bytes) else data
    async with http.post("/v1/media", data=payload,
                         headers={**who.auth, **(headers or {})}) as response:
        assert response.status == status, await response.text()
        return await response.json(content_type=None)


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes, str]:
    """GET a media URL: site-relative ones (local store) go to the same server."""
    async with http.get(url) as response:
        return response.status, await response.read(), response.content_type


# -- the shared server: local-disk store -----------------------------------------------------

async def test_upload_a_jpeg_serves_it_reencoded_without_exif(
        http: aiohttp.ClientSession) -> None:
    ann = await signup(http)
    original = jpeg_with_exif(64, 32, orientation=6)
    media = await upload(http, ann, form(original, "holiday.jpg", "image/jpeg"), 201)
    assert (media["content_type"], media["width"], media["height"]) == ("image/jpeg", 32, 64)
    assert media["status"] == "ready" and media["url"].startswith("/media/")

    status, body, content_type = await fetch(http, media["url"])
    assert (status, content_type, len(body)) == (200, "image/jpeg", media["size"])
    assert SECRET_MAKE.encode() not in body and b"secret comment" not in body
    image = Image.open(io.BytesIO(body))
    assert image.size == (32, 64) and not image.getexif()

    status, thumb, content_type = await fetch(http, media["thumbnail_url"])
    assert (status, content_type) == (200, "image/webp")
    assert Image.open(io.BytesIO(thumb)).size == (32, 64)

    async with http.get(f"/v1/media/{media['id']}", headers=ann.auth) as response:
        assert response.status == 200
        assert (await response.json())["id"] == media["id"]
    bob = await signup(http)
    async with http.get(f"/v1/media/{media['id']}", headers=bob.auth) as response:
        assert response.status == 404  # only the owner reads it here


async def test_a_png_upload_keeps_its_format_and_dimensions(http: aiohttp.ClientSession) -> None:
    ann = await signup(http)
    media = await upload(http, ann, png(48, 24), 201)
    assert (media["content_type"], media["width"], media["height"]) == ("image/png", 48, 24)
    status, body, _ = await fetch(http, media["url"])
    assert status == 200 and Image.open(io.BytesIO(body)).format == "PNG"


async def test_media_urls_cannot_be_forged(http: aiohttp.ClientSession) -> None:
    ann = await signup(http)
    media = await upload(http, ann, png(), 201)
    forged = media["url"].replace("original.png", "thumb.webp")
    for url, code in ((forged, "invalid_signature"),
                      (media["url"].split("&token=")[0] + "&token=" + "A" * 43,
                       "invalid_signature"),
                      (f"/media/{media['id']}/original.png?expires=1&token=x",
                       "invalid_signature")):
        async with http.get(url) as response:
            assert response.status == 403
            assert (await response.json())["code"] == code


@pytest.mark.parametrize("data,filename,content_type", [
    (b"just some text, honestly\n" * 20, "cat.png", "image/png"),
    (ELF_HEADER, "photo.jpg", "image/jpeg"),
    (EXE_HEADER, "setup.gif", "image/gif"),
    (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "x.webp", "image/webp"),
], ids=["text-as-png", "elf-as-jpg", "exe-as-gif", "svg-as-webp"])
async def test_non_images_are_415_whatever_their_name(http: aiohttp.ClientSession, data: bytes,
                                                     filename: str, content_type: str) -> None:
    ann = await signup(http)
    problem = await upload(http, ann, form(data, filename, content_type), 415)
    assert problem["code"] == "unsupported_media_type"


async def test_a_decompression_bomb_is_422(http: aiohttp.ClientSession) -> None:
    ann = await signup(http)
    problem = await upload(http, ann, form(png_bomb(30_000, 30_000), "bomb.png"), 422)
    assert problem["code"] == "image_too_large"


async def test_a_corrupt_image_is_422(http: aiohttp.ClientSession) -> None:
    ann = await signup(http)
    problem = await upload(http, ann, form(png()[:-40], "broken.png"), 422)
    assert problem["code"] == "invalid_image"


async def test_an_11_mb_file_is_413_with_or_without_content_length(
        http: aiohttp.ClientSession) -> None:
    ann = await signup(http)
    big = b"\xff\xd8\xff\xe0" + bytes(ELEVEN_MB)
    problem = await upload(http, ann, form(big, "huge.jpg", "image/jpeg"), 413)
    assert problem["status"] == 413

    boundary = uuid.uuid4().hex

    async def streamed() -> AsyncIterator[bytes]:  # chunked: the cap applies while reading
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"huge.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
        for _ in range(ELEVEN_MB // (256 * 1024)):
            yield bytes(256 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**ann.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with http.post("/v1/media", data=streamed(), headers=headers) as response:
        assert response.status == 413
        assert (await response.json(content_type=None))["code"] == "too_large"


async def test_form_mistakes_are_clear_problems(http: aiohttp.ClientSession) -> None:
    ann = await signup(http)
    two = aiohttp.FormData()
    two.add_field("file", png(), filename="a.png", content_type="image/png")
    two.add_field("file", png(), filename="b.png", content_type="image/png")
    assert (await upload(http, ann, two, 422))["code"] == "too_many_files"
    empty = aiohttp.FormData(default_to_multipart=True)
    empty.add_field("caption", "no file here")
    assert (await upload(http, ann, empty, 422))["code"] == "file_required"
    assert (await upload(http, ann, form(png(), field="image"), 422))["code"] == "unexpected_file"
    async with http.post("/v1/media", json={"file": "x"}, headers=ann.auth) as response:
        assert response.status == 415
    async with http.post("/v1/media", data=form(png())) as response:
        assert response.status == 401


_PART = b'Content-Disposition: form-data; name="%s"; filename="a.png"\r\nContent-Type: image/png'
# Multipart bodies aiohttp's parser refuses: these were 500s (issue 9) and must be 400s.
MALFORMED_MULTIPART = {
    "control character in a part header value":
        b'--b\r\nContent-Disposition: form-data; name="%s"; filename="a\x01.png"\r\n\r\n'
        b"xx\r\n--b--\r\n",
    "control character in a part header name":
        b"--b\r\nContent-Dis\x01position: form-data; name=\"%s\"\r\n\r\nxx\r\n--b--\r\n",
    "part header without a colon": b"--b\r\nContent-Disposition form-data\r\n\r\nxx\r\n--b--\r\n",
    "part header over 8 KiB": b"--b\r\n" + _PART.replace(b"a.png", b"a" * 9000 + b".png")
        + b"\r\n\r\nxx\r\n--b--\r\n",
    "no opening boundary": b"garbage where the first boundary should be",
    "truncated part": b"--b\r\n" + _PART + b"\r\n\r\nxx",
    "part without a name": b"--b\r\nContent-Type: text/plain\r\n\r\nxx\r\n--b--\r\n",
    "text field that is not UTF-8":
        b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\n\xff\xfe\r\n--b--\r\n',
}


@pytest.mark.parametrize("route", ["/v1/media", "/v1/posts"])
@pytest.mark.parametrize("case", list(MALFORMED_MULTIPART))
async def test_malformed_multipart_bodies_are_400(http: aiohttp.ClientSession, route: str,
                                                  case: str) -> None:
    ann = await signup(http)
    field = b"file" if route == "/v1/media" else b"files"
    body = MALFORMED_MULTIPART[case].replace(b"%s", field)
    async with http.post(route, data=body, headers={
            **ann.auth, "Content-Type": "multipart/form-data; boundary=b"}) as response:
        assert response.status == 400, await response.text()
        problem = await response.json(content_type=None)
    assert problem["code"] == "malformed" and response.content_type == "application/problem+json"


async def test_form_fields_in_another_charset_are_415(http: aiohttp.ClientSession) -> None:
    """unicode_escape or utf-7 would turn bytes into NUL or unpaired surrogates."""
    ann = await signup(http)
    for charset in ("utf-7", "unicode_escape", "no-such-charset"):
        body = (b'--b\r\nContent-Disposition: form-data; name="text"\r\n'
                b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n\r\n"
                b"+2AA- \\u0000\r\n--b--\r\n")
        async with http.post("/v1/posts", data=body, headers={
                **ann.auth, "Content-Type": "multipart/form-data; boundary=b"}) as response:
            assert response.status == 415, await response.text()
            assert (await response.json(content_type=None))["code"] == "unsupported_charset"


async def test_idempotency_key_replays_the_first_upload(http: aiohttp.ClientSession) -> None:
    ann = await signup(http)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    data = png(33, 11)
    first = await upload(http, ann, data, 201, key)
    async with http.post("/v1/media", data=form(data), headers={**ann.auth, **key}) as response:
        assert response.status == 201
        assert response.headers["Idempotent-Replayed"] == "true"
        again = await response.json()
    assert again["id"] == first["id"] and again["width"] == 33
    assert (await upload(http, ann, png(34, 11), 422, key))["code"] == "idempotency_key_reused"
    # Concurrent duplicates under a fresh key: one upload, one id.
    fresh = {"Idempotency-Key": uuid.uuid4().hex}
    results = await asyncio.gather(*(upload(http, ann, data, 201, fresh) for _ in range(4)))
    assert len({r["id"] for r in results}) == 1
    assert (await upload(http, ann, data, 400, {"Idempotency-Key": "a b"}))["code"] == (
        "invalid_idempotency_key")


async def presigned_flow(http: aiohttp.ClientSession, who: Account, data: bytes,
                         content_type: str = "image/png") -> dict[str, Any]:
    async with http.post("/v1/media/uploads", headers=who.auth,
                         json={"content_type": content_type, "size": len(data)}) as response:
        assert response.status == 201, await response.text()
        ticket = await response.json()
    assert ticket["method"] == "PUT" and ticket["headers"] == {"Content-Type": content_type}
    async with http.get(f"/v1/media/{ticket['id']}", headers=who.auth) as response:
        assert (await response.json())["status"] == "pending"
    # A plain HTTP client with no bearer token, as a browser or phone would upload.
    async with aiohttp.ClientSession() as plain, plain.put(
            absolute(http, ticket["upload_url"]), data=data,
            headers=ticket["headers"]) as response:
        assert response.status in (200, 204), await response.text()
    return ticket


def absolute(http: aiohttp.ClientSession, url: str) -> str:
    return url if url.startswith("http") else str(http._base_url).rstrip("/") + url


async def test_presigned_upload_then_complete(http: aiohttp.ClientSession) -> None:
    ann = await signup(http)
    ticket = await presigned_flow(http, ann, jpeg_with_exif(40, 20), "image/jpeg")
    async with http.post(f"/v1/media/{ticket['id']}/complete", headers=ann.auth) as response:
        assert response.status == 200, await response.text()
        media = await response.json()
    assert (media["id"], media["status"], media["width"]) == (ticket["id"], "ready", 40)
    status, body, _ = await fetch(http, media["url"])
    assert status == 200 and SECRET_MAKE.encode() not in body
    async with http.post(f"/v1/media/{ticket['id']}/complete", headers=ann.auth) as response:
        assert response.status == 200  # completing again answers the same media


async def test_presigned_upload_is_pinned_and_validated_on_complete(
        http: aiohttp.ClientSession) -> None:
    ann = await signup(http)
    async with http.post("/v1/media/uploads", headers=ann.auth,
                         json={"content_type": "image/png", "size": 20}) as response:
        ticket = await response.json()
    async with http.post(f"/v1/media/{ticket['id']}/complete", headers=ann.auth) as response:
        assert response.status == 409
        assert (await response.json(content_type=None))["code"] == "upload_missing"
    url = absolute(http, ticket["upload_url"])
    async with http.put(url, data=bytes(20), headers={"Content-Type": "image/gif"}) as response:
        assert response.status == 415  # not the signed content type
    async with http.put(url, data=bytes(21), headers=ticket["headers"]) as response:
        assert response.status == 413  # not the signed size

    # The right size and type, but an executable: refused on complete, and gone after.
    bad = await presigned_flow(http, ann, ELF_HEADER, "image/jpeg")
    async with http.post(f"/v1/media/{bad['id']}/complete", headers=ann.auth) as response:
        assert response.status == 415
    async with http.get(f"/v1/media/{bad['id']}", headers=ann.auth) as response:
        assert response.status == 404
    for body in ({"content_type": "image/svg+xml", "size": 10},
                 {"content_type": "image/png", "size": ELEVEN_MB}):
        async with http.post("/v1/media/uploads", headers=ann.auth, json=body) as response:
            assert response.status == 422


# -- a second server whose media store is S3 (moto) ----------------------------------------

@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def s3_hubbub(s3_endpoint: S3Endpoint,
              hubbub: HubbubProcess) -> Iterator[HubbubProcess]:
    """Shares the shared server's database (so its migrations are done) but stores media in
    a fresh bucket that it must create at start."""
    with sibling_server(hubbub, REDIS_URL="",
                        **s3_endpoint.env(f"hubbub-e2e-{uuid.uuid4().hex[:10]}")) as server:
        yield server


@pytest_asyncio.fixture
async def s3_http(s3_hubbub: HubbubProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=s3_hubbub.base_url) as session:
        yield session


async def test_s3_store_upload_and_presigned_flow(s3_http: aiohttp.ClientSession,
                                                  s3_endpoint: S3Endpoint) -> None:
    async with s3_http.get("/info") as response:
        assert (await response.json())["adapters"]["media"] == "s3"
    ann = await signup(s3_http)
    media = await upload(s3_http, ann, form(jpeg_with_exif(30, 60), "a.jpg", "image/jpeg"), 201)
    assert media["url"].startswith(s3_endpoint.url + "/")  # presigned, straight from S3
    assert "X-Amz-Signature=" in media["url"]
    status, body, _ = await fetch(s3_http, media["url"])
    assert status == 200 and len(body) == media["size"]
    assert SECRET_MAKE.encode() not in body
    async with s3_http.get(media["url"].split("?")[0]) as response:
        assert response.status == 403  # the bucket is private: only signed URLs read it

    ticket = await presigned_flow(s3_http, ann, png(25, 5))
    assert ticket["upload_url"].startswith(s3_endpoint.url + "/")
    assert "content-length%3Bcontent-type%3Bhost" in ticket["upload_url"]
    async with s3_http.post(f"/v1/media/{ticket['id']}/complete",
                            headers=ann.auth) as response:
        assert response.status == 200, await response.text()
        ready = await response.json()
    assert (ready["width"], ready["height"], ready["content_type"]) == (25, 5, "image/png")
    status, body, content_type = await fetch(s3_http, ready["url"])
    assert (status, content_type) == (200, "image/png")
    assert Image.open(io.BytesIO(body)).size == (25, 5)
    status, _, content_type = await fetch(s3_http, ready["thumbnail_url"])
    assert (status, content_type) == (200, "image/webp")
    # Local-disk routes are off with S3.
    async with s3_http.get(f"/media/{ready['id']}/original.png?expires=1&token=x") as response:
        assert response.status == 404
