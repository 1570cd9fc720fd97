"""Image validation by content: each refusal, and what survives re-encoding (pixels only)."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from server.http.problems import ProblemError
from server.media.images import THUMBNAIL_EDGE, process_image, sniff
from tests.support.images import (
    ELF_HEADER,
    EXE_HEADER,
    SECRET_MAKE,
    encode,
    exif_bytes,
    gif_animation,
    jpeg_with_exif,
    marked,
    png,
    png_bomb,
)


def refusal(data: bytes, **options: int) -> tuple[int, str]:
    with pytest.raises(ProblemError) as caught:
        process_image(data, **options)
    return caught.value.status, caught.value.code


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("data", [
    b"", b"hello, this is a text file renamed to .png\n" * 10, ELF_HEADER, EXE_HEADER,
    b"%PDF-1.7\n" + b"0" * 100, b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    encode(Image.new("RGB", (8, 8)), "BMP"), encode(Image.new("RGB", (8, 8)), "TIFF"),
], ids=["empty", "text", "elf", "exe", "pdf", "svg", "bmp", "tiff"])
def test_anything_but_the_four_formats_is_415(data: bytes) -> None:
    assert refusal(data) == (415, "unsupported_media_type")


def test_over_the_byte_limit_is_413_before_any_parsing() -> None:
    assert refusal(png(), max_bytes=100) == (413, "too_large")


@pytest.mark.parametrize("data", [
    png()[:-30], png()[:60], jpeg_with_exif()[:300],
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, b"\xff\xd8\xff\xe0" + b"\x13" * 40,
    b"GIF89a" + b"\x01" * 40, b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 20,
], ids=["png-truncated-end", "png-truncated-idat", "jpeg-truncated", "png-garbage",
        "jpeg-garbage", "gif-garbage", "webp-garbage"])
def test_a_broken_image_of_an_allowed_format_is_422_invalid_image(data: bytes) -> None:
    assert refusal(data) == (422, "invalid_image")


def test_a_decompression_bomb_is_refused_fast_without_decoding() -> None:
    bomb = png_bomb(30_000, 30_000)
    assert len(bomb) < 10_000
    started = time.perf_counter()
    assert refusal(bomb) == (422, "image_too_large")
    # Decoding 900 megapixels would take seconds and allocate ~110 MB; the header is enough.
    assert time.perf_counter() - started < 0.5


def test_the_pixel_ceiling_is_configurable_and_counts_animation_frames() -> None:
    assert refusal(png_bomb(3000, 3000), max_pixels=5_000_000) == (422, "image_too_large")
    assert refusal(png(300, 300), max_pixels=80_000) == (422, "image_too_large")
    # 4 frames of 24x24 = 2304 pixels: over a 2000-pixel ceiling though one frame is not.
    assert refusal(gif_animation(4, 24), max_pixels=2000) == (422, "image_too_large")


def test_exif_gps_and_comments_are_stripped_and_orientation_applied() -> None:
    original = jpeg_with_exif(64, 32, orientation=6)  # 6: rotate 90 degrees clockwise to view
    assert SECRET_MAKE.encode() in original
    result = process_image(original)
    assert (result.content_type, result.extension) == ("image/jpeg", "jpg")
    assert (result.width, result.height) == (32, 64)  # turned upright
    assert SECRET_MAKE.encode() not in result.data and b"secret comment" not in result.data
    image = opened(result.data)
    assert image.size == (32, 64)
    assert not image.getexif() and "exif" not in image.info and "comment" not in image.info
    # The blue quadrant was top-left; after a clockwise quarter turn it is top-right.
    top_right = image.getpixel((24, 8))
    top_left = image.getpixel((8, 8))
    assert isinstance(top_right, tuple) and isinstance(top_left, tuple)
    assert top_right[2] > 200 > top_right[0]
    assert top_left[0] > 200 > top_left[2]


@pytest.mark.parametrize("orientation,size", [(1, (64, 32)), (3, (64, 32)), (8, (32, 64))])
def test_dimensions_follow_the_orientation(orientation: int, size: tuple[int, int]) -> None:
    result = process_image(jpeg_with_exif(64, 32, orientation=orientation))
    assert (result.width, result.height) == size == opened(result.data).size


def test_png_webp_and_gif_keep_their_format_and_lose_metadata() -> None:
    info = Image.new("RGBA", (40, 30), (1, 2, 3, 128))
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "secret author")
    cases = {
        "image/png": encode(info, "PNG", pnginfo=text),
        "image/webp": encode(marked(40, 30), "WEBP", exif=exif_bytes()),
        "image/gif": encode(marked(40, 30).convert("P"), "GIF", comment=b"secret gif"),
    }
    for content_type, data in cases.items():
        result = process_image(data)
        assert result.content_type == content_type
        assert (result.width, result.height) == (40, 30)
        assert b"secret" not in result.data and SECRET_MAKE.encode() not in result.data
        image = opened(result.data)
        assert not {"exif", "comment", "Author", "icc_profile", "xmp"} & set(image.info)
    # Transparency is part of the picture, not metadata: it survives.
    assert opened(process_image(cases["image/png"]).data).getpixel((0, 0)) == (1, 2, 3, 128)


def test_an_icc_profile_is_converted_away() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(marked(20, 20), "JPEG", icc_profile=srgb)
    assert "icc_profile" in opened(data).info
    assert "icc_profile" not in opened(process_image(data).data).info


def test_gif_animation_keeps_its_frames_and_timing() -> None:
    result = process_image(gif_animation(frames=4, size=24))
    assert result.frames == 4
    image = opened(result.data)
    assert image.n_frames == 4
    durations = []
    for index in range(4):
        image.seek(index)
        durations.append(image.info["duration"])
    assert durations == [40, 50, 60, 70]


def test_cmyk_and_alpha_inputs_become_encodable_outputs() -> None:
    cmyk = process_image(encode(Image.new("CMYK", (10, 10), (0, 255, 255, 0)), "JPEG"))
    assert opened(cmyk.data).mode == "RGB"
    palette = process_image(encode(Image.new("P", (10, 10)), "PNG", transparency=0))
    assert opened(palette.data).mode == "P"


def test_a_thumbnail_is_a_small_webp() -> None:
    result = process_image(encode(marked(1200, 600), "PNG"))
    thumbnail = opened(result.thumbnail)
    assert thumbnail.format == "WEBP" and result.thumbnail_content_type == "image/webp"
    assert thumbnail.size == (THUMBNAIL_EDGE, THUMBNAIL_EDGE // 2)
    small = process_image(png(20, 10))
    assert opened(small.thumbnail).size == (20, 10)  # never enlarged


def test_sniff_names_the_claimed_format_only() -> None:
    assert sniff(png()) == "PNG"
    assert sniff(jpeg_with_exif()) == "JPEG"
    assert sniff(gif_animation()) == "GIF"
    assert sniff(encode(marked(4, 4), "WEBP")) == "WEBP"
    assert sniff(ELF_HEADER) is None


def test_a_phone_mpo_jpeg_is_a_jpeg_of_its_primary_picture() -> None:
    data = encode(marked(30, 20), "MPO", save_all=True,
                  append_images=[Image.new("RGB", (30, 20), (0, 255, 0))])
    assert opened(data).format == "MPO"
    result = process_image(data)
    assert (result.content_type, result.frames) == ("image/jpeg", 1)
    image = opened(result.data)
    assert image.format == "JPEG" and image.size == (30, 20)
