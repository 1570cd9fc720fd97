"""MediaService over in-memory ports: uploads, presigned uploads, reads and post claims."""

from __future__ import annotations

import pytest

from protocols.ids import new_id
from protocols.media import UploadRequest
from server.http.problems import ProblemError
from server.media.service import MediaService, upload_key
from tests.support.images import ELF_HEADER, SECRET_MAKE, jpeg_with_exif, png
from tests.unit.fakes_media import MemoryBlobStore, MemoryMediaStore

OWNER = new_id()
OTHER = new_id()


@pytest.fixture
def blobs() -> MemoryBlobStore:
    return MemoryBlobStore()


@pytest.fixture
def store() -> MemoryMediaStore:
    return MemoryMediaStore()


@pytest.fixture
def service(blobs: MemoryBlobStore, store: MemoryMediaStore) -> MediaService:
    return MediaService(blobs=blobs, store=store, url_ttl=600, upload_ttl=300,
                        clock=lambda: 1_700_000_000.0)


async def problem(awaitable: object) -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        await awaitable  # type: ignore[misc]
    return caught.value


async def test_upload_stores_the_reencoded_image_and_a_thumbnail(
        service: MediaService, blobs: MemoryBlobStore, store: MemoryMediaStore) -> None:
    media = await service.upload(OWNER, jpeg_with_exif(64, 32, orientation=6), "image/png")
    assert (media.status, media.content_type, media.width, media.height) == (
        "ready", "image/jpeg", 32, 64)
    assert media.url == f"memory://get/{media.id}/original.jpg?ttl=600"
    assert media.thumbnail_url == f"memory://get/{media.id}/thumb.webp?ttl=600"
    original, content_type = blobs.objects[f"{media.id}/original.jpg"]
    assert content_type == "image/jpeg" and len(original) == media.size
    assert SECRET_MAKE.encode() not in original
    assert blobs.objects[f"{media.id}/thumb.webp"][1] == "image/webp"
    assert store.rows[media.id].status == "ready"


async def test_a_refused_upload_leaves_nothing(service: MediaService, blobs: MemoryBlobStore,
                                               store: MemoryMediaStore) -> None:
    assert (await problem(service.upload(OWNER, ELF_HEADER))).status == 415
    assert not blobs.objects and not store.rows


async def test_upload_many_is_all_or_nothing(service: MediaService, blobs: MemoryBlobStore,
                                             store: MemoryMediaStore) -> None:
    error = await problem(service.upload_many(OWNER, [png(), png(), b"not an image"]))
    assert error.code == "unsupported_media_type"
    assert not blobs.objects and not store.rows
    media = await service.upload_many(OWNER, [png(10, 10), png(20, 10)])
    assert [m.width for m in media] == [10, 20] and len(store.rows) == 2


async def test_presigned_upload_then_complete(service: MediaService, blobs: MemoryBlobStore,
                                              store: MemoryMediaStore) -> None:
    data = png(30, 20)
    ticket = await service.create_upload(OWNER, UploadRequest(content_type="image/png",
                                                              size=len(data)))
    assert ticket.upload_url.startswith(f"memory://put/{ticket.id}/upload?type=image/png")
    assert ticket.headers == {"Content-Type": "image/png"}
    assert ticket.expires_at.timestamp() == 1_700_000_300
    pending = await service.get(OWNER, ticket.id)
    assert (pending.status, pending.url, pending.width) == ("pending", "", None)

    error = await problem(service.complete(OWNER, ticket.id))
    assert (error.status, error.code) == (409, "upload_missing")
    await blobs.put(upload_key(ticket.id), data, "image/png")  # what the client's PUT does

    media = await service.complete(OWNER, ticket.id)
    assert (media.status, media.width, media.height) == ("ready", 30, 20)
    assert set(blobs.objects) == {f"{ticket.id}/original.png", f"{ticket.id}/thumb.webp"}
    assert await service.complete(OWNER, ticket.id) == media  # idempotent
    assert store.rows[ticket.id].storage_key == f"{ticket.id}/original.png"


async def test_complete_refuses_bad_bytes_and_drops_the_upload(
        service: MediaService, blobs: MemoryBlobStore, store: MemoryMediaStore) -> None:
    ticket = await service.create_upload(OWNER, UploadRequest(content_type="image/jpeg",
                                                              size=len(ELF_HEADER)))
    await blobs.put(upload_key(ticket.id), ELF_HEADER, "image/jpeg")
    error = await problem(service.complete(OWNER, ticket.id))
    assert (error.status, error.code) == (415, "unsupported_media_type")
    assert not blobs.objects and ticket.id not in store.rows


async def test_complete_refuses_a_size_other_than_declared(
        service: MediaService, blobs: MemoryBlobStore, store: MemoryMediaStore) -> None:
    ticket = await service.create_upload(OWNER, UploadRequest(content_type="image/png",
                                                              size=10))
    await blobs.put(upload_key(ticket.id), png(), "image/png")
    error = await problem(service.complete(OWNER, ticket.id))
    assert (error.status, error.code) == (422, "upload_mismatch")
    assert ticket.id not in store.rows


async def test_only_the_owner_sees_or_completes_media(service: MediaService) -> None:
    media = await service.upload(OWNER, png())
    assert (await service.get(OWNER, media.id)).id == media.id
    for viewer, media_id in ((OTHER, media.id), (OWNER, new_id()), (OWNER, "nope")):
        assert (await problem(service.get(viewer, media_id))).code == "media_not_found"
    assert (await problem(service.complete(OTHER, media.id))).status == 404


async def test_get_many_keeps_the_order_and_hides_others_pending(service: MediaService) -> None:
    first, second = await service.upload(OWNER, png(10, 10)), await service.upload(OWNER, png())
    ticket = await service.create_upload(OWNER, UploadRequest(content_type="image/png", size=9))
    ids = [second.id, new_id(), first.id, ticket.id]
    assert [m.id for m in await service.get_many(ids, OTHER)] == [second.id, first.id]
    assert [m.id for m in await service.get_many(ids, OWNER)] == [second.id, first.id,
                                                                   ticket.id]


async def test_claim_for_post_attaches_in_order(service: MediaService) -> None:
    media = [await service.upload(OWNER, png(10 + i, 10)) for i in range(3)]
    post_id = new_id()
    ids = [media[2].id, media[0].id, media[1].id]
    await service.claim_for_post(None, OWNER, ids, post_id)  # type: ignore[arg-type]
    by_post = await service.media_for_posts([post_id, new_id()])
    assert list(by_post) == [post_id]
    assert [m.id for m in by_post[post_id]] == ids
    assert [m.width for m in by_post[post_id]] == [12, 10, 11]


async def test_claim_for_post_refuses_any_bad_id(service: MediaService,
                                                 store: MemoryMediaStore) -> None:
    mine = await service.upload(OWNER, png())
    theirs = await service.upload(OTHER, png())
    attached = await service.upload(OWNER, png())
    await service.claim_for_post(None, OWNER, [attached.id], new_id())  # type: ignore[arg-type]
    pending = await service.create_upload(OWNER, UploadRequest(content_type="image/png", size=5))
    cases = {
        "not a media id": [mine.id, "x"],
        "listed twice": [mine.id, mine.id],
        "no such media of yours": [mine.id, theirs.id],
        "the upload is not completed": [mine.id, pending.id],
        "already attached to a post": [mine.id, attached.id],
    }
    for why, ids in cases.items():
        error = await problem(service.claim_for_post(None, OWNER, ids,  # type: ignore[arg-type]
                                                     new_id()))
        assert (error.status, error.code) == (422, "invalid_media")
        assert error.errors is not None and error.errors[0].field == "media_ids[1]"
        assert why in (error.detail or "") and ids[1] in (error.detail or "")
    assert mine.id not in store.links  # nothing attached by a refused claim
