"""Small real images made in memory with Pillow, and the multipart/form-data body that
carries them (the API's media upload and the one-request post with `files`)."""

from __future__ import annotations

import io
import random
import uuid

from PIL import Image, ImageDraw

FORMATS = (("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"))


def random_image() -> tuple[str, str, bytes]:
    """(file name, content type, bytes) of a small PNG or JPEG: a few coloured shapes on a
    background, 48..160 px a side, so that every upload is a different, valid picture."""
    kind, content_type, extension = random.choice(FORMATS)
    width, height = random.randint(48, 160), random.randint(48, 160)
    image = Image.new("RGB", (width, height), _colour())
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y = random.randrange(width), random.randrange(height)
        draw.rectangle((x, y, x + random.randint(4, width // 2),
                        y + random.randint(4, height // 2)), fill=_colour())
    buffer = io.BytesIO()
    image.save(buffer, kind, **({"quality": 80} if kind == "JPEG" else {}))
    return f"lt-{uuid.uuid4().hex[:8]}.{extension}", content_type, buffer.getvalue()


def multipart(fields: dict[str, str], files: list[tuple[str, str, str, bytes]],
              ) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart/form-data request; `files` holds
    (field name, file name, content type, bytes)."""
    boundary = f"hubbub-lt-{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     .encode() + value.encode() + b"\r\n")
    for name, filename, content_type, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
                     + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _colour() -> tuple[int, int, int]:
    return random.randrange(256), random.randrange(256), random.randrange(256)
