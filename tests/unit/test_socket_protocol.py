"""Socket.IO payload decoding (protocols.socket) and the gateway's per-connection limits."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocols.socket import (
    CLIENT_EVENTS,
    MAX_PRESENCE_IDS,
    AckError,
    AuthRefresh,
    ErrorBody,
    JoinAck,
    MessageSendEvent,
    PresenceSet,
    PresenceSubscribe,
    RoomJoin,
    UnknownEvent,
    decode,
    to_wire,
)
from server.gateway.limits import TokenBucket

ROOM = "0190A0B0-0000-7000-8000-000000000001"


def test_every_client_event_from_the_contract_has_one_struct() -> None:
    assert set(CLIENT_EVENTS) == {
        "room:join", "room:leave", "message:send", "typing", "message:read",
        "presence:set", "presence:subscribe", "auth:refresh",
        "call:invite", "call:accept", "call:reject", "call:hangup", "call:signal",
    }
    for struct in CLIENT_EVENTS.values():
        assert struct.__struct_config__.frozen
        assert struct.__struct_config__.forbid_unknown_fields


@pytest.mark.parametrize(("event", "payload", "expected"), [
    ("room:join", {"room_id": ROOM}, RoomJoin(room_id=ROOM)),
    ("room:join", {"room_id": ROOM, "since_seq": 0}, RoomJoin(room_id=ROOM, since_seq=0)),
    ("message:send", {"room_id": ROOM, "client_id": "c-1", "text": "hi"},
     MessageSendEvent(room_id=ROOM, client_id="c-1", text="hi")),
    ("presence:set", {"status": "dnd"}, PresenceSet(status="dnd")),
    ("presence:subscribe", {"user_ids": []}, PresenceSubscribe(user_ids=[])),
    ("auth:refresh", {"token": "t"}, AuthRefresh(token="t")),
])
def test_valid_payloads_decode(event: str, payload: dict[str, Any], expected: object) -> None:
    assert decode(event, (payload,)) == expected


@pytest.mark.parametrize(("event", "args"), [
    ("room:join", ()),  # no payload
    ("room:join", ({"room_id": ROOM}, {"room_id": ROOM})),  # two payloads
    ("room:join", ([ROOM],)),  # not an object
    ("room:join", ("garbage",)),
    ("room:join", (None,)),
    ("room:join", (42,)),
    ("room:join", ({"room_id": "not-an-id"},)),
    ("room:join", ({"room_id": ROOM + "\n"},)),
    ("room:join", ({"room_id": ROOM, "since_seq": -1},)),
    ("room:join", ({"room_id": ROOM, "since_seq": "3"},)),  # strict: no coercion
    ("room:join", ({"room_id": ROOM, "extra": True},)),  # unknown field
    ("room:leave", ({},)),
    ("message:send", ({"room_id": ROOM, "client_id": "c", "text": ""},)),
    ("message:send", ({"room_id": ROOM, "client_id": "c", "text": "x" * 4001},)),
    ("message:send", ({"room_id": ROOM, "client_id": "with space", "text": "x"},)),
    ("message:send", ({"room_id": ROOM, "text": "x"},)),
    ("typing", ({"room_id": ROOM, "active": "yes"},)),
    ("message:read", ({"room_id": ROOM, "seq": 0},)),
    ("message:read", ({"room_id": ROOM, "seq": 1.5},)),
    ("presence:set", ({"status": "offline"},)),  # offline is not chosen, it happens
    ("presence:subscribe", ({"user_ids": [ROOM] * (MAX_PRESENCE_IDS + 1)},)),
    ("presence:subscribe", ({"user_ids": "everyone"},)),
    ("auth:refresh", ({"token": ""},)),
])
def test_malformed_payloads_raise_validation_errors(event: str, args: tuple[Any, ...]) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(event, args)


@pytest.mark.parametrize("event", ["call:ring", "connect", "", None, 42, ["room:join"]])
def test_unknown_events_are_refused(event: object) -> None:
    with pytest.raises(UnknownEvent):
        decode(event, ({"room_id": ROOM},))


def test_acks_have_the_contract_shape() -> None:
    assert to_wire(AckError(error=ErrorBody(code="invalid", message="bad"))) == {
        "ok": False, "error": {"code": "invalid", "message": "bad"}}
    limited = to_wire(AckError(error=ErrorBody(code="rate_limited", message="slow",
                                               retry_after=0.5)))
    assert limited["error"]["retry_after"] == 0.5
    assert to_wire(JoinAck(last_seq=3, missed=[])) == {"ok": True, "last_seq": 3, "missed": []}


def test_token_bucket_allows_a_burst_then_the_sustained_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=20, burst=40, clock=lambda: now[0])
    assert all(bucket.take() == 0.0 for _ in range(40))
    wait = bucket.take()
    assert wait == pytest.approx(1 / 20)
    now[0] += 0.5  # refills 10 tokens
    assert sum(bucket.take() == 0.0 for _ in range(20)) == 10
    now[0] += 1000  # never above the burst
    assert sum(bucket.take() == 0.0 for _ in range(100)) == 40
