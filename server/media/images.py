"""Image validation and re-encoding, by content. Pure (no I/O); CPU-bound, so callers run
`process_image` in a worker thread (see MediaService).

What a file is comes from its bytes (Pillow, restricted to JPEG, PNG, WEBP and GIF); the file
name and the declared content type are never trusted. The pixel ceiling is checked from the
header, right after open and before anything is decoded, so a decompression bomb (a tiny file
declaring a huge canvas) is refused without allocating its pixels. Pillow's own global guard
(`Image.MAX_IMAGE_PIXELS`) is left alone: it is process-wide and only warns between 1x and
2x its value; the explicit per-call check is stricter and thread-safe, and a
DecompressionBombError Pillow still raises at open (beyond 2x) maps to the same problem.

Every output is re-encoded from pixels only, so EXIF (GPS, camera serials), XMP, comments and
text chunks are gone; the EXIF orientation is applied first, and an embedded ICC profile is
converted to sRGB rather than dropped (colours stay right). Animated GIF, WEBP and APNG keep
their frames and timing when frames x pixels stays under the ceiling; a JPEG/MPO keeps only its
primary picture.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageCms, UnidentifiedImageError

from protocols.media import MAX_MEDIA_BYTES
from server.http.problems import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

DEFAULT_MAX_PIXELS: Final = 40_000_000
THUMBNAIL_EDGE: Final = 320  # px, the longer side
MAX_FRAMES: Final = 1000
THUMBNAIL_CONTENT_TYPE: Final = "image/webp"
_QUALITIES: Final = (90, 80, 70)
_LOSSY: Final = frozenset({"JPEG", "MPO", "WEBP"})

# Pillow format -> (content type, file extension). MPO is how Pillow names JPEGs that carry
# extra pictures (most phone cameras); it is a JPEG for everyone else.
_FORMATS: Final = {
    "JPEG": ("image/jpeg", "jpg"),
    "MPO": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
}
_PLUGINS: Final = ("JPEG", "PNG", "WEBP", "GIF")
_ANIMATABLE: Final = frozenset({"GIF", "WEBP", "PNG"})
# Errors Pillow raises on broken input while parsing or decoding.
_DECODE_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
                         TypeError, KeyError, ZeroDivisionError)
_ORIENTATION_TAG: Final = 0x0112
_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    data: bytes  # the re-encoded image, metadata-free
    content_type: str  # what the bytes are (image/jpeg, image/png, image/webp, image/gif)
    extension: str
    width: int  # after applying the EXIF orientation
    height: int
    frames: int  # 1 for a still image
    thumbnail: bytes  # WEBP, the longer side at most THUMBNAIL_EDGE
    thumbnail_content_type: str = THUMBNAIL_CONTENT_TYPE


def not_an_image() -> UnsupportedMediaType:
    return UnsupportedMediaType("The file is not a JPEG, PNG, WEBP or GIF image",
                                code="unsupported_media_type")


def invalid_image(why: str = "") -> ValidationFailed:
    detail = "The image is corrupt or truncated" + (f": {why}" if why else "")
    return ValidationFailed(detail, code="invalid_image")


def image_too_large(detail: str) -> ValidationFailed:
    return ValidationFailed(detail, code="image_too_large")


def file_too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"An image may be at most {max_bytes} bytes", code="too_large")


def sniff(data: bytes) -> str | None:
    """The allowed format the leading bytes claim, or None (no decoding)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def process_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                  max_bytes: int = MAX_MEDIA_BYTES) -> ProcessedImage:
    """Validate `data` as an image and re-encode it without metadata, plus a thumbnail.

    Raises PayloadTooLarge (413 `too_large`) over `max_bytes`; UnsupportedMediaType (415
    `unsupported_media_type`) when the bytes are no JPEG/PNG/WEBP/GIF at all; ValidationFailed
    422 `image_too_large` when width x height (x frames, for animations) exceeds `max_pixels`;
    422 `invalid_image` when the bytes claim an allowed format but do not decode.
    """
    if len(data) > max_bytes:
        raise file_too_large(max_bytes)
    format_, frames = _inspect(data, max_pixels)
    try:
        with _open(data) as image:
            orientation = _orientation(image)
            icc = image.info.get("icc_profile")
            stills, durations, loop = _decode_frames(image, frames)
    except _DECODE_ERRORS as exc:
        raise invalid_image(_reason(exc)) from None
    try:
        stills = [_to_srgb(_orient(frame, orientation), icc) for frame in stills]
        encoded = _encode(format_, stills, durations, loop, max_bytes)
        thumbnail = _thumbnail(stills[0])
    except _DECODE_ERRORS as exc:  # e.g. a mode the encoder refuses: still the input's fault
        raise invalid_image(_reason(exc)) from None
    content_type, extension = _FORMATS[format_]
    out_width, out_height = stills[0].size
    return ProcessedImage(data=encoded, content_type=content_type, extension=extension,
                          width=out_width, height=out_height, frames=len(stills),
                          thumbnail=thumbnail)


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=_PLUGINS)


def _inspect(data: bytes, max_pixels: int) -> tuple[str, int]:
    """Identify the format and check the declared size, then verify() the structure.
    Nothing is decoded here except what verify() checks (PNG chunk CRCs, ...)."""
    try:
        image = _open(data)
    except Image.DecompressionBombError:
        raise image_too_large(f"The image has more than {max_pixels} pixels") from None
    except UnidentifiedImageError:
        # Pillow could not parse it as any allowed format. If the magic bytes say it is one,
        # it is a broken image (422); otherwise it is something else entirely (415).
        if sniff(data) is not None:
            raise invalid_image("unreadable header") from None
        raise not_an_image() from None
    except _DECODE_ERRORS as exc:
        raise invalid_image(_reason(exc)) from None
    with image:
        format_ = image.format or ""
        if format_ not in _FORMATS:
            raise not_an_image()
        width, height = image.size
        if width < 1 or height < 1:
            raise invalid_image("empty canvas")
        if width * height > max_pixels:
            raise image_too_large(f"The image is {width}x{height}; at most {max_pixels} "
                                  "pixels are allowed")
        frames = 1
        if format_ in _ANIMATABLE and getattr(image, "is_animated", False):
            try:
                frames = image.n_frames  # walks the frame headers, decodes nothing
            except _DECODE_ERRORS as exc:
                raise invalid_image(_reason(exc)) from None
            if frames > MAX_FRAMES or frames * width * height > max_pixels:
                raise image_too_large(f"The animation has {frames} frames of {width}x{height}; "
                                      f"at most {max_pixels} pixels in all are allowed")
        try:
            image.verify()
        except _DECODE_ERRORS as exc:
            raise invalid_image(_reason(exc)) from None
    return format_, frames


def _decode_frames(image: Image.Image,
                   frames: int) -> tuple[list[Image.Image], list[int], int | None]:
    """Decode every frame to be kept; the copies carry pixels (and the palette) only."""
    if frames == 1:
        image.load()
        return [_pixels_only(image)], [], None
    stills: list[Image.Image] = []
    durations: list[int] = []
    for index in range(frames):
        image.seek(index)
        image.load()
        # Later GIF frames decode as RGB(A) composited on the canvas; one mode for all.
        stills.append(_pixels_only(image.convert("RGBA")))
        durations.append(int(image.info.get("duration", 100) or 100))
    loop = image.info.get("loop")
    return stills, durations, int(loop) if loop is not None else None


def _pixels_only(image: Image.Image) -> Image.Image:
    clean = image.copy()
    transparency = image.info.get("transparency")
    # Everything in .info is metadata the encoders would write back (EXIF, XMP, ICC,
    # comments, text chunks, dpi); only palette transparency is part of the picture.
    clean.info = {} if transparency is None else {"transparency": transparency}
    return clean


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        return 1  # unreadable EXIF: treat as upright
    return value if isinstance(value, int) else 1


def _orient(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    if method is None:
        return image
    turned = image.transpose(method)
    turned.info = dict(image.info)
    return turned


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert pixels described by an embedded ICC profile to sRGB; on any trouble keep the
    pixels as they are (the profile is dropped either way)."""
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        if image.mode == "RGBA":
            alpha = image.getchannel("A")
            converted = ImageCms.profileToProfile(image.convert("RGB"), source, srgb,
                                                  outputMode="RGB")
            assert converted is not None
            converted.putalpha(alpha)
        else:
            converted = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
            assert converted is not None
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError, AssertionError):
        return image
    converted.info = {}
    return converted


def _encode(format_: str, stills: list[Image.Image], durations: list[int],
            loop: int | None, max_bytes: int) -> bytes:
    """Re-encode; lossy formats step the quality down while the result exceeds max_bytes
    (re-encoding a noisy photo at a higher quality than its source can grow it)."""
    for quality in _QUALITIES:
        data = _encode_once(format_, stills, durations, loop, quality)
        if len(data) <= max_bytes or format_ not in _LOSSY:
            break
    return data


def _encode_once(format_: str, stills: list[Image.Image], durations: list[int],
                 loop: int | None, quality: int) -> bytes:
    out = io.BytesIO()
    first = stills[0]
    if format_ in ("JPEG", "MPO"):
        if first.mode not in ("L", "RGB"):
            first = _flatten(first) if _has_alpha(first) else first.convert("RGB")
            first.info = {}
        first.save(out, "JPEG", quality=quality)
    elif len(stills) > 1:
        options: dict[str, object] = {"save_all": True, "append_images": stills[1:],
                                      "duration": durations}
        if loop is not None:
            options["loop"] = loop
        if format_ == "WEBP":
            options["quality"] = quality
        if format_ == "GIF":
            options["disposal"] = 2  # each frame is a full canvas; clear before the next
        first.save(out, format_, **options)
    elif format_ == "WEBP":
        if first.mode not in ("RGB", "RGBA"):
            first = first.convert("RGBA" if _has_alpha(first) else "RGB")
            first.info = {}
        first.save(out, "WEBP", quality=quality)
    else:  # PNG, GIF: the decoded mode (palette included) is one the format can hold
        first.save(out, format_)
    return out.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    thumb = image.convert("RGBA" if _has_alpha(image) else "RGB")
    thumb.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
    thumb.info = {}
    out = io.BytesIO()
    thumb.save(out, "WEBP", quality=80)
    return out.getvalue()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _flatten(image: Image.Image) -> Image.Image:
    """Composite on white (JPEG has no alpha; black would show where it was transparent)."""
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _reason(exc: BaseException) -> str:
    return str(exc)[:200] or type(exc).__name__
