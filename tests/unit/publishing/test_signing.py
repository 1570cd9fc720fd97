"""Webhook signatures follow the Standard Webhooks scheme: the spec's own test vector, and the
reference `standardwebhooks` library verifies what we sign."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from server.publishing import signing

# The test vector of the Standard Webhooks reference libraries.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
PAYLOAD = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_spec_test_vector() -> None:
    assert signing.sign(SECRET, MSG_ID, TIMESTAMP, PAYLOAD) == EXPECTED


def test_the_reference_library_verifies_our_headers() -> None:
    secret = signing.new_secret()
    body = b'{"type":"post.published","data":{"text":"hello"}}'
    headers = signing.headers(secret, "01a2:0", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) is not None
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)  # another secret
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)  # another body


def test_new_secrets_are_whsec_base64_of_32_random_bytes() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    with pytest.raises(ValueError):
        signing.secret_key("not-a-secret")
