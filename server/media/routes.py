"""REST routes for media: upload through the API, presigned upload + complete, read one's own
media, and (local-disk store only) the signed URLs Hubbub serves itself.

Media URLs expire (MEDIA_URL_TTL): clients re-read the media (or the post holding it) for a
fresh one. With the local-disk store, `GET /media/{key}` serves the images and
`PUT /media/{key}` receives presigned uploads, both authorised by the URL's signature rather
than a bearer token (as S3 presigned URLs are); with S3 those URLs point at the bucket and
these two routes answer 404.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from protocols.media import Media, UploadRequest, UploadTicket
from protocols.problems import FieldError
from server.auth.principal import Principal
from server.http.endpoint import Endpoints, read_body
from server.http.idempotency import HEADER as IDEMPOTENCY_HEADER
from server.http.idempotency import Idempotency, IdempotentResult, fingerprint
from server.http.problems import (
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    UnsupportedMediaType,
    ValidationFailed,
)
from server.media.multipart import BINARY, MULTIPART, read_images
from server.media.service import MediaService
from server.media.wiring import LOCAL_MEDIA, MEDIA_SERVICE
from server.openapi.generator import ID_PARAMS, form_schema
from storage.local.blob_store import LocalBlobStore

api = Endpoints("media")

_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
_VALIDATION = ("Validated by content, whatever the file name or declared type says: JPEG, PNG, "
               "WEBP or GIF (else 415 `unsupported_media_type`), at most 10 MB (else 413 "
               "`too_large`), at most MEDIA_MAX_PIXELS pixels (else 422 `image_too_large`: "
               "decompression bombs are refused before decoding), decodable (else 422 "
               "`invalid_image`). Stored re-encoded without EXIF or other metadata, with the "
               "EXIF orientation applied, plus a thumbnail (WEBP, 320 px).")
_IDEMPOTENT = (f" Send `{IDEMPOTENCY_HEADER}` to make retries safe: the same key returns the "
               "first result (`Idempotent-Replayed: true`); reusing it for another request is "
               "422 `idempotency_key_reused`; while the first is running, 409 "
               "`idempotency_in_progress`.")
# Served media are inert: never sniffed into something executable, never scripted.
_SERVE_HEADERS = {"X-Content-Type-Options": "nosniff",
                  "Content-Security-Policy": "default-src 'none'; sandbox",
                  "Cross-Origin-Resource-Policy": "cross-origin"}


def _service(request: web.Request) -> MediaService:
    return request.app[MEDIA_SERVICE]


@api.post("/v1/media", name="media.upload", response=Media, status=201, rate_limit=120,
          content_types=(MULTIPART,), idempotent=True, errors=(400, 409, 413, 415, 422),
          summary="Upload an image (multipart, one `file` field)",
          description=_VALIDATION + " A second file is 422 `too_many_files`." + _IDEMPOTENT)
@form_schema({"file": BINARY}, required=["file"])
async def upload(request: web.Request, principal: Principal) -> web.Response:
    _, files = await read_images(request, max_files=1, file_field="file")
    if not files:
        raise ValidationFailed("Send the image in a `file` field", code="file_required",
                               errors=[FieldError(field="file", message="required")])
    file = files[0]
    service = _service(request)
    owner = principal.user_id
    idem = Idempotency.from_request(request, user_id=owner, scope="media.upload",
                                    fingerprint=fingerprint(file.data))
    if (stored := await idem.lookup()) is not None:
        return await _replay(service, owner, stored)
    prepared = await service.prepare(owner, file.data, file.content_type)
    try:
        result = await idem.run(201, lambda conn: service.commit(prepared, conn=conn))
    except BaseException:
        await service.discard(prepared)
        raise
    if result.replayed:  # a concurrent duplicate committed first: ours is surplus
        await service.discard(prepared)
        return await _replay(service, owner, result)
    return result.response()


async def _replay(service: MediaService, owner_id: str,
                  stored: IdempotentResult) -> web.Response:
    """The stored Media, re-read so its URLs are fresh (they expire); as stored if it is gone."""
    media_id = stored.body.get("id") if isinstance(stored.body, dict) else None
    try:
        fresh: Any = await service.get(owner_id, media_id) if media_id else msgspec.UNSET
    except NotFound:
        fresh = msgspec.UNSET
    return stored.response(body=fresh)


@api.post("/v1/media/uploads", name="media.create_upload", body=UploadRequest,
          response=UploadTicket, status=201, rate_limit=120, errors=(409,), idempotent=True,
          summary="Start a presigned upload: PUT the bytes to `upload_url`, then complete",
          description="PUT exactly `size` bytes to `upload_url` with `headers` (its "
          "Content-Type) before `expires_at`; anything else is refused. Then POST "
          "/v1/media/{id}/complete, which validates the bytes like POST /v1/media." + _IDEMPOTENT)
async def create_upload(request: web.Request, principal: Principal,
                        body: UploadRequest) -> web.Response:
    service = _service(request)
    idem = Idempotency.from_request(request, user_id=principal.user_id,
                                    scope="media.create_upload",
                                    fingerprint=fingerprint(msgspec.json.encode(body)))
    result = await idem.run(201, lambda conn: service.create_upload(principal.user_id, body,
                                                                    conn=conn))
    return result.response()


@api.post("/v1/media/{id}/complete", name="media.complete", response=Media,
          errors=(404, 409, 413, 415, 422), params=ID_PARAMS,
          summary="Finish a presigned upload: validate the bytes and make the media ready",
          description=_VALIDATION + " Bytes that fail are deleted with the pending media. "
          "409 `upload_missing` when nothing was uploaded yet. Completing a ready media "
          "returns it. 404 for media that are not yours.")
async def complete(request: web.Request, principal: Principal) -> Media:
    return await _service(request).complete(principal.user_id, request.match_info["id"])


@api.get("/v1/media/{id}", name="media.get", response=Media, errors=(404,), etag=True,
         params=ID_PARAMS, summary="One of your media items (with fresh URLs)",
         description="Only the owner sees a media item here (404 for anyone else); others "
         "see media through the posts they are attached to. A pending upload has an empty "
         "`url`. The ETag covers the URLs too (they carry their expiry), so a 304 never "
         "keeps an expired URL in use: with the local store they change every 5 minutes, "
         "with S3 on every read (so expect 200s).")
async def get_media(request: web.Request, principal: Principal) -> Media:
    return await _service(request).get(principal.user_id, request.match_info["id"])


# -- the local-disk store's signed URLs ---------------------------------------------------

def _local(request: web.Request) -> LocalBlobStore:
    local = request.app.get(LOCAL_MEDIA)
    if local is None:
        raise NotFound("Media are served from object storage")
    return local


def _signature_problem(verdict: str) -> ProblemError:
    if verdict == "expired":
        return Forbidden("This URL has expired; fetch a fresh one", code="url_expired")
    return Forbidden("This URL's signature is not valid", code="invalid_signature")


@api.get("/media/{key:.+}", name="media.serve", auth=False, errors=(403, 404),
         summary="An image or thumbnail, by signed URL (local-disk store only)",
         description="The URLs in Media.url and Media.thumbnail_url; the signature and expiry "
         "are in the query. 403 `url_expired` / `invalid_signature`.")
async def serve(request: web.Request) -> web.StreamResponse:
    local = _local(request)
    key = request.match_info["key"]
    verdict = local.check_get(key, request.query)
    if verdict != "valid":
        raise _signature_problem(verdict)
    info = await local.head(key)
    data = await local.get(key) if info is not None else None
    if info is None or data is None:
        raise NotFound("No such media")
    remaining = max(0, int(request.query["expires"]) - int(time.time()))
    return web.Response(body=data, content_type=info.content_type, headers={
        **_SERVE_HEADERS, "Cache-Control": f"private, max-age={remaining}, immutable"})


@api.put("/media/{key:.+}", name="media.upload_content", auth=False, status=204,
         content_types=_IMAGE_TYPES, errors=(400, 403, 404, 413, 415),
         summary="Receive a presigned upload (local-disk store only)",
         description="The `upload_url` of an upload ticket. The body must be exactly the signed "
         "size (413 beyond it, 400 short of it) with the signed Content-Type (415 otherwise).")
async def upload_content(request: web.Request) -> None:
    local = _local(request)
    key = request.match_info["key"]
    grant = local.check_put(key, request.query)
    if grant.verdict != "valid":
        raise _signature_problem(grant.verdict)
    if request.content_type != grant.content_type:
        raise UnsupportedMediaType(f"This URL takes Content-Type: {grant.content_type}")
    if request.content_length is not None and request.content_length > grant.size:
        raise PayloadTooLarge(f"This URL takes exactly {grant.size} bytes")
    data = await read_body(request, grant.size)
    if len(data) != grant.size:
        raise BadRequest(f"This URL takes exactly {grant.size} bytes; {len(data)} arrived",
                         code="size_mismatch")
    await local.put(key, data, grant.content_type)
