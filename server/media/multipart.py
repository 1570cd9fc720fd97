"""Read `multipart/form-data` uploads as a stream, with hard caps, for any route that takes
files (POST /v1/media; POST /v1/posts in its multipart form).

    fields, files = await read_images(request, max_files=10, file_field="files")

Limits, checked while reading (nothing beyond a cap is buffered):
- each file at most `max_file_bytes` (10 MB) -> 413 `too_large`, as soon as a part grows past it;
- at most `max_files` files -> 422 `too_many_files` when one more begins;
- text fields: at most MAX_FIELDS of them, MAX_FIELD_BYTES each -> 413 / 422;
- a Content-Length beyond what the caps allow in total -> 413 before reading anything.
A file part whose field name is not `file_field` is 422 `unexpected_file`; a body that is not
multipart/form-data is 415, and so is a text field in a charset other than UTF-8
(`unsupported_charset`); a malformed one (broken framing, part headers with control
characters, bytes that are not UTF-8 in a text field) is 400 `malformed`. Files are NOT
validated here: pass their bytes to MediaService, which decides by content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from protocols.media import MAX_MEDIA_BYTES
from protocols.problems import FieldError
from server.http.problems import (
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

MULTIPART = "multipart/form-data"
MAX_FIELDS = 20
MAX_FIELD_BYTES = 16 * 1024
_CHUNK = 64 * 1024
_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_PART_OVERHEAD = 1024  # boundary and part headers, per part, when bounding Content-Length

# OpenAPI (server.openapi.generator.form_schema) descriptions of the two forms.
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}


@dataclass(frozen=True, slots=True)
class Upload:
    field: str
    filename: str | None  # as the client named it: informational only
    content_type: str | None  # as the client declared it: never trusted
    data: bytes


async def read_images(request: web.Request, *, max_files: int = 10, file_field: str = "files",
                      max_file_bytes: int = MAX_MEDIA_BYTES) -> tuple[dict[str, str],
                                                                      list[Upload]]:
    """The text fields (name -> value; a repeated name keeps the last) and the files, in
    order. See the module docstring for the limits and the problems raised."""
    if request.content_type != MULTIPART:
        raise UnsupportedMediaType(f"Send the body as {MULTIPART}")
    ceiling = (max_files * (max_file_bytes + _PART_OVERHEAD)
               + MAX_FIELDS * (MAX_FIELD_BYTES + _PART_OVERHEAD))
    if request.content_length is not None and request.content_length > ceiling:
        raise PayloadTooLarge(f"The body may be at most {ceiling} bytes")
    try:
        return await _read(request, max_files, file_field, max_file_bytes)
    except HttpProcessingError as exc:
        # Part headers the HTTP header parser refuses (control characters, bad names,
        # over-long lines): InvalidHeader, BadHttpMessage, LineTooLong.
        raise BadRequest(f"The multipart body has a malformed part header: "
                         f"{_reason(exc)}") from None
    except (ValueError, AssertionError, RuntimeError, LookupError) as exc:
        # aiohttp's multipart parser reports a malformed body with these.
        raise BadRequest(f"The multipart body is malformed: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """The parser's reason, short and printable (it may quote the client's bytes)."""
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    return (str(text).encode("ascii", "backslashreplace").decode("ascii")
            .replace("\n", " ").strip()[:200])


async def _read(request: web.Request, max_files: int, file_field: str,
                max_file_bytes: int) -> tuple[dict[str, str], list[Upload]]:
    reader = await request.multipart()
    fields: dict[str, str] = {}
    files: list[Upload] = []
    field_count = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Nested multipart bodies are not accepted")
        name = part.name
        if not name:
            raise BadRequest("Each part needs a Content-Disposition: form-data with a name")
        if part.filename is not None:
            if name != file_field:
                raise ValidationFailed(
                    f"Files go in the `{file_field}` field", code="unexpected_file",
                    errors=[FieldError(field=name, message="unexpected file field")])
            if len(files) == max_files:
                raise ValidationFailed(
                    f"At most {max_files} file(s) per request", code="too_many_files",
                    errors=[FieldError(field=file_field,
                                       message=f"at most {max_files} file(s)")])
            data = await _read_capped(part, max_file_bytes, f"A file may be at most "
                                      f"{max_file_bytes} bytes")
            files.append(Upload(field=name, filename=part.filename,
                                content_type=part.headers.get("Content-Type"), data=data))
        else:
            field_count += 1
            if field_count > MAX_FIELDS:
                raise ValidationFailed(f"At most {MAX_FIELDS} form fields",
                                       code="too_many_fields")
            raw = await _read_capped(part, MAX_FIELD_BYTES,
                                     f"A form field may be at most {MAX_FIELD_BYTES} bytes")
            fields[name] = _text(raw, part.get_charset(default="utf-8"))
    return fields, files


def _text(raw: bytes, charset: str) -> str:
    """A text field's value. UTF-8 only (ASCII is UTF-8): codecs such as unicode_escape or
    utf-7 turn bytes into NUL or unpaired surrogates, and some are not text codecs at all."""
    if charset.strip().lower().replace("_", "-") not in _CHARSETS:
        raise UnsupportedMediaType(f"Send form fields as UTF-8, not {charset[:40]!r}",
                                   code="unsupported_charset")
    return raw.decode("utf-8")  # a UnicodeDecodeError is a ValueError: 400 above


async def _read_capped(part: BodyPartReader, limit: int, message: str) -> bytes:
    buffer = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        buffer += chunk
        if len(buffer) > limit:
            raise PayloadTooLarge(message, code="too_large")
    return bytes(buffer)
