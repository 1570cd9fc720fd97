"""Test images made on the spot with Pillow (and one by hand: the decompression bomb)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

SECRET_MAKE = "HubbubSecretCam"  # EXIF camera make: must never survive an upload
GPS_IFD = 0x8825
ORIENTATION = 0x0112
MAKE = 0x010F

ELF_HEADER = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 200
EXE_HEADER = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 200


def encode(image: Image.Image, format_: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format_, **options)
    return out.getvalue()


def exif_bytes(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[MAKE] = SECRET_MAKE
    exif[ORIENTATION] = orientation
    exif[GPS_IFD] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    return exif.tobytes()


def marked(width: int, height: int) -> Image.Image:
    """Red everywhere except a blue top-left quadrant: shows which way an image was turned."""
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, width // 2, height // 2))
    return image


def jpeg_with_exif(width: int = 64, height: int = 32, orientation: int = 1) -> bytes:
    return encode(marked(width, height), "JPEG", quality=95, exif=exif_bytes(orientation),
                  comment=b"secret comment")


def png(width: int = 48, height: int = 24, mode: str = "RGBA") -> bytes:
    return encode(Image.new(mode, (width, height), (10, 200, 30)), "PNG")


def gif_animation(frames: int = 4, size: int = 24) -> bytes:
    images = [Image.new("RGB", (size, size), (i * 50 % 256, 255 - i * 50 % 256, 0))
              for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:],
                  duration=[40 + 10 * i for i in range(frames)], loop=0)


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid-looking PNG declaring width x height 1-bit pixels, a few hundred bytes on disk:
    decoding it would allocate width*height bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = zlib.compress(b"\x00" * (width // 8 + 1) * 64, 9)  # a sliver of the rows
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
