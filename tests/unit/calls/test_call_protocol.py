"""The call events decode like every client event: strict, unknown fields refused."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocols.calls import CallId, CallInvite, CallSignal
from protocols.socket import decode

ID = "0190A0B0-0000-7000-8000-000000000001"


@pytest.mark.parametrize(("event", "payload", "expected"), [
    ("call:invite", {"user_ids": [ID], "media": "video"},
     CallInvite(user_ids=[ID], media="video")),
    ("call:invite", {"room_id": ID, "media": "audio"}, CallInvite(room_id=ID, media="audio")),
    ("call:hangup", {"call_id": ID}, CallId(call_id=ID)),
    ("call:signal", {"call_id": ID, "to_user_id": ID, "kind": "ice", "payload": {"c": 1}},
     CallSignal(call_id=ID, to_user_id=ID, kind="ice", payload={"c": 1})),
])
def test_valid_call_events_decode(event: str, payload: dict[str, Any], expected: object) -> None:
    assert decode(event, (payload,)) == expected


@pytest.mark.parametrize(("event", "payload"), [
    ("call:invite", {"user_ids": [ID]}),  # no media
    ("call:invite", {"user_ids": [ID], "media": "hologram"}),
    ("call:invite", {"user_ids": [ID] * 8, "media": "audio"}),  # more than a mesh holds
    ("call:invite", {"user_ids": [], "media": "audio"}),
    ("call:accept", {"call_id": "nope"}),
    ("call:reject", {"call_id": ID, "extra": 1}),
    ("call:signal", {"call_id": ID, "to_user_id": ID, "kind": "bye", "payload": {}}),
    ("call:signal", {"call_id": ID, "to_user_id": ID, "kind": "offer", "payload": "sdp"}),
])
def test_malformed_call_events_are_refused(event: str, payload: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(event, (payload,))
