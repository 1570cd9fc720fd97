"""S3 adapter of server.media.ports.BlobStore, on aiobotocore (any S3-compatible store: AWS,
MinIO, moto).

One client for the app's lifetime: `S3BlobStore.connect(...)` is an async context manager
that opens it, creates the bucket when missing, and closes it on exit. Presigned URLs are
SigV4 query-signed; the PUT grant signs Content-Type and Content-Length, so S3 refuses an
upload of another type or size. Driver errors become storage.errors.StorageError here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from protocols.media_records import BlobInfo
from storage.blobs import check_key
from storage.errors import StorageError

_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})
_DEFAULT_REGION = "us-east-1"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's ceiling


class S3BlobStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    @classmethod
    @asynccontextmanager
    async def connect(cls, *, endpoint_url: str | None, bucket: str, region: str,
                      access_key_id: str | None,
                      secret_access_key: str | None) -> AsyncIterator[S3BlobStore]:
        """Open the client, make sure the bucket exists, yield the store; close on exit."""
        config = AioConfig(
            signature_version="s3v4",
            # Path-style URLs work with every S3-compatible server and need no wildcard DNS.
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5, read_timeout=30,
            # Only checksum when S3 requires it: the default (CRC32 on every PUT, and in
            # presigned URLs) is not understood by every S3-compatible server.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = get_session()
        async with session.create_client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
            config=config,
        ) as client:
            store = cls(client, bucket)
            await store.ensure_bucket(region)
            yield store

    async def ensure_bucket(self, region: str = _DEFAULT_REGION) -> None:
        """Create the bucket unless it exists (racing creators both succeed)."""
        try:
            await self._client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise StorageError(f"S3 head_bucket {self._bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 head_bucket {self._bucket}: {exc}") from exc
        options: dict[str, Any] = {"Bucket": self._bucket}
        if region != _DEFAULT_REGION:
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._client.create_bucket(**options)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StorageError(f"S3 create_bucket {self._bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 create_bucket {self._bucket}: {exc}") from exc

    async def ping(self) -> None:
        """Raise StorageError unless the bucket is reachable (readiness probe)."""
        try:
            await self._client.head_bucket(Bucket=self._bucket)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"S3 bucket {self._bucket} unreachable: {exc}") from exc

    # -- BlobStore -----------------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        check_key(key)
        try:
            await self._client.put_object(Bucket=self._bucket, Key=key, Body=data,
                                          ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"S3 put {key}: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        check_key(key)
        try:
            response = await self._client.get_object(Bucket=self._bucket, Key=key)
            async with response["Body"] as body:
                return await body.read()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise StorageError(f"S3 get {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 get {key}: {exc}") from exc

    async def head(self, key: str) -> BlobInfo | None:
        check_key(key)
        try:
            response = await self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise StorageError(f"S3 head {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 head {key}: {exc}") from exc
        return BlobInfo(size=int(response["ContentLength"]),
                        content_type=response.get("ContentType") or "application/octet-stream")

    async def delete(self, key: str) -> None:
        check_key(key)
        try:
            await self._client.delete_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise StorageError(f"S3 delete {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 delete {key}: {exc}") from exc

    async def presigned_put(self, key: str, content_type: str, size: int,
                            expires: int) -> tuple[str, dict[str, str]]:
        check_key(key)
        url = await self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self._bucket, "Key": key, "ContentType": content_type,
                    "ContentLength": size},
            ExpiresIn=min(expires, MAX_PRESIGN_SECONDS), HttpMethod="PUT",
        )
        return url, {"Content-Type": content_type}

    async def url_for(self, key: str, expires: int) -> str:
        check_key(key)
        return await self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key},
            ExpiresIn=min(expires, MAX_PRESIGN_SECONDS),
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
