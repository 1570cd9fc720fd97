"""The BlobStore contract, one suite over both adapters: S3 (against moto in server mode) and
the local disk (its signed URLs served by the real media routes on a localhost server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.http.middleware import problem_details
from server.keys import ENDPOINTS
from server.media.ports import BlobStore
from server.media.routes import api as media_api
from server.media.wiring import LOCAL_MEDIA, media_signing_key
from storage.blobs import InvalidKey
from storage.local.blob_store import LocalBlobStore
from storage.s3.blob_store import S3BlobStore
from tests.support.s3 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Endpoint, moto_s3

pytestmark = pytest.mark.integration

SIGNING_KEY = media_signing_key("integration-secret-" + "x" * 32)
BAD_KEYS = ["", "/etc/passwd", "../escape", "a/../../b", "a//b", "a/./b", ".hidden", "a\n",
            "a b", "a\\b", "x" * 600, "a/" * 10 + "b"]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


def connect(endpoint: S3Endpoint, bucket: str, region: str = REGION) -> S3BlobStore.connect:
    return S3BlobStore.connect(endpoint_url=endpoint.url, bucket=bucket, region=region,
                               access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY)


@pytest_asyncio.fixture(scope="session")
async def s3_store(s3_endpoint: S3Endpoint) -> AsyncIterator[S3BlobStore]:
    async with connect(s3_endpoint, f"hubbub-{uuid.uuid4().hex[:12]}") as store:
        yield store


class Served:
    """A store plus how a plain HTTP client reaches its URLs."""

    def __init__(self, store: BlobStore, base_url: str) -> None:
        self.store = store
        self.base_url = base_url

    def absolute(self, url: str) -> str:
        return url if url.startswith("http") else self.base_url + url


@pytest_asyncio.fixture
async def local_served(tmp_path: Path) -> AsyncIterator[Served]:
    store = LocalBlobStore(tmp_path / "media", SIGNING_KEY)
    await store.start()
    app = web.Application(middlewares=[problem_details])
    app[ENDPOINTS] = []
    media_api.register(app)  # only the signed-URL routes are used (they need no auth)
    app[LOCAL_MEDIA] = store
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Served(store, str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


@pytest.fixture(params=["local", "s3"])
def served(request: pytest.FixtureRequest) -> Served:
    if request.param == "local":
        return request.getfixturevalue("local_served")
    return Served(request.getfixturevalue("s3_store"), "")


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def unique(name: str) -> str:
    return f"{uuid.uuid4()}/{name}"


async def test_put_get_head_delete(served: Served) -> None:
    store, key = served.store, unique("original.png")
    assert await store.get(key) is None and await store.head(key) is None
    await store.put(key, b"first", "image/png")
    await store.put(key, b"second!", "image/webp")  # replaces
    assert await store.get(key) == b"second!"
    info = await store.head(key)
    assert info is not None and (info.size, info.content_type) == (7, "image/webp")
    await store.delete(key)
    await store.delete(key)  # idempotent
    assert await store.get(key) is None and await store.head(key) is None


async def test_keys_that_could_escape_are_refused(served: Served) -> None:
    for key in BAD_KEYS:
        for call in (served.store.put(key, b"x", "image/png"), served.store.get(key),
                     served.store.head(key), served.store.delete(key),
                     served.store.url_for(key, 60),
                     served.store.presigned_put(key, "image/png", 1, 60)):
            with pytest.raises(InvalidKey):
                await call


async def test_presigned_put_from_a_plain_client_then_read_back(
        served: Served, http: aiohttp.ClientSession) -> None:
    store, key = served.store, unique("upload")
    body = b"\x89PNG pretend image bytes"
    url, headers = await store.presigned_put(key, "image/png", len(body), 120)
    assert headers == {"Content-Type": "image/png"}
    async with http.put(served.absolute(url), data=body, headers=headers) as response:
        assert response.status in (200, 204), await response.text()
    assert await store.get(key) == body
    info = await store.head(key)
    assert info is not None and (info.size, info.content_type) == (len(body), "image/png")

    async with http.get(served.absolute(await store.url_for(key, 300))) as response:
        assert response.status == 200
        assert await response.read() == body
        assert response.content_type == "image/png"


async def test_a_get_url_for_a_missing_object_is_404(served: Served,
                                                     http: aiohttp.ClientSession) -> None:
    url = served.absolute(await served.store.url_for(unique("gone.png"), 60))
    async with http.get(url) as response:
        assert response.status == 404


# -- S3 specifics --------------------------------------------------------------------------

async def test_s3_presigned_put_signs_content_type_and_length(s3_store: S3BlobStore) -> None:
    url, _ = await s3_store.presigned_put(unique("upload"), "image/jpeg", 1234, 60)
    query = parse_qs(urlparse(url).query)
    # moto does not check signatures, S3 and MinIO do: a PUT with another Content-Type or
    # Content-Length than these signed headers is refused with SignatureDoesNotMatch.
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert query["X-Amz-Expires"] == ["60"]
    assert "x-amz-sdk-checksum-algorithm" not in {k.lower() for k in query}


async def test_s3_bucket_is_created_when_missing(s3_endpoint: S3Endpoint) -> None:
    for region in ("us-east-1", "eu-west-1"):
        bucket = f"hubbub-new-{uuid.uuid4().hex[:10]}"
        async with connect(s3_endpoint, bucket, region) as store:
            await store.ping()
            await store.put("k/v", b"x", "text/plain")
        async with connect(s3_endpoint, bucket, region) as again:  # exists now: no error
            assert await again.get("k/v") == b"x"


# -- local-disk specifics ------------------------------------------------------------------

async def test_local_urls_are_signed_and_expire(local_served: Served, tmp_path: Path,
                                                http: aiohttp.ClientSession) -> None:
    store = local_served.store
    assert isinstance(store, LocalBlobStore)
    key = unique("original.png")
    await store.put(key, b"pixels", "image/png")
    url = await store.url_for(key, 60)
    assert url.startswith(f"/media/{key}?expires=")
    tampered = [url.replace("token=", "token=A"), url.replace(key, unique("original.png")),
                url.split("&token=")[0]]
    for bad in tampered:
        async with http.get(local_served.absolute(bad)) as response:
            assert response.status == 403
            assert (await response.json())["code"] == "invalid_signature"

    clock = [1_000_000.0]
    expiring = LocalBlobStore(tmp_path / "other", SIGNING_KEY, clock=lambda: clock[0])
    old = await expiring.url_for(key, 60)
    query = {k: v[0] for k, v in parse_qs(urlparse(old).query).items()}
    assert expiring.check_get(key, query) == "valid"
    assert int(query["expires"]) >= clock[0] + 60  # at least what was asked
    assert await expiring.url_for(key, 60) == old  # same URL within a window: cacheable
    clock[0] = float(query["expires"]) + 1
    assert expiring.check_get(key, query) == "expired"
    async with http.get(local_served.absolute(old)) as response:  # the real clock: long past
        assert response.status == 403 and (await response.json())["code"] == "url_expired"


async def test_local_presigned_put_is_pinned(local_served: Served,
                                             http: aiohttp.ClientSession) -> None:
    store, key = local_served.store, unique("upload")
    url, headers = await store.presigned_put(key, "image/png", 10, 60)
    put = local_served.absolute(url)
    refusals = [
        ({"Content-Type": "image/jpeg"}, b"0123456789", 415),
        (headers, b"0123456789-and-more", 413),
        (headers, b"01234", 400),
    ]
    for sent_headers, body, status in refusals:
        async with http.put(put, data=body, headers=sent_headers) as response:
            assert response.status == status, await response.text()
    async with http.put(put.replace("size=10", "size=11"), data=b"0123456789x",
                        headers=headers) as response:
        assert response.status == 403
    assert await store.head(key) is None  # nothing was stored by a refused PUT

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap still holds
        for _ in range(4):
            yield b"01234567"

    async with http.put(put, data=chunks(), headers=headers) as response:
        assert response.status == 413
    async with http.put(put, data=b"0123456789", headers=headers) as response:
        assert response.status == 204
    assert await store.get(key) == b"0123456789"


async def test_local_store_writes_atomically_under_its_root(local_served: Served,
                                                            tmp_path: Path) -> None:
    store, key = local_served.store, unique("original.png")
    await store.put(key, b"data", "image/png")
    root = tmp_path / "media"
    assert (root / "objects" / key).read_bytes() == b"data"
    assert list((root / "tmp").iterdir()) == []  # temp files renamed away
    await store.delete(key)
    assert not (root / "objects" / key.split("/")[0]).exists()  # empty folder pruned
