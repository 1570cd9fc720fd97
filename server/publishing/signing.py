"""Standard Webhooks signatures (https://www.standardwebhooks.com, "Signature scheme").

The secret is `whsec_` + base64 of random bytes; the key is those decoded bytes. A delivery
carries `webhook-id`, `webhook-timestamp` (integer Unix seconds) and `webhook-signature:
v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where body is the exact bytes
sent. A receiver recomputes the HMAC over the raw body, compares in constant time, and refuses
timestamps too far from its clock (replays); it dedupes on `webhook-id`.

Implemented here (a few lines of the standard library) rather than through the
`standardwebhooks` package, which the tests use instead as an independent verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec allows 24 to 64


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret (ValueError when it is not one)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a Standard Webhooks secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for this delivery."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body)}
