"""The edges of calls without I/O: the RoomActor's system messages, TURN REST credentials,
the call's REST view and its summary line."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from protocols.call_messages import CallParticipant, CallRecord
from protocols.room_messages import AppendSystemMessage, SendMessage
from server.calls.service import ice_servers, summary, turn_credentials, visible_call
from server.config import load_settings
from server.http.problems import NotFound
from tests.unit.chat.room_rig import Rig

A, B = "0190a0b0-0000-7000-8000-0000000000a1", "0190a0b0-0000-7000-8000-0000000000a2"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = Rig()
    yield rig
    await rig.system.stop()


async def test_a_system_message_takes_the_next_seq_once(rig: Rig) -> None:
    room = rig.room([A, B])
    await room.ask(SendMessage(user_id=A, client_id="m1", text="hi"), timeout=1)
    note = AppendSystemMessage(sender_id=A, client_id="call:x", text="Audio call, 0:42")
    first = await room.ask(note, timeout=1)
    again = await room.ask(note, timeout=1)
    assert first.seq == 2 and first.kind == "system" and again.id == first.id
    after = await room.ask(SendMessage(user_id=B, client_id="m2", text="yo"), timeout=1)
    assert after.seq == 3 and rig.stored_seqs(room) == [1, 2, 3]
    assert [e["message"]["kind"] for e in rig.broadcaster.events("message:new")] == [
        "text", "system", "text"]
    assert all(m.kind == "text" for _, m in rig.notifier.calls)  # no notification for it


def test_turn_credentials_follow_the_turn_rest_scheme() -> None:
    settings = load_settings({"JWT_SECRET": "x" * 32, "TURN_SECRET": "s3cret",
                              "TURN_URLS": "turn:a:3478,turns:b:5349", "STUN_URLS": " ",
                              "TURN_CREDENTIAL_TTL": "60"})
    servers = ice_servers(settings, A, now=1000.5)
    assert servers.ttl == 60
    [turn] = servers.ice_servers  # the blank STUN list is left out
    assert turn.urls == ["turn:a:3478", "turns:b:5349"]
    assert turn.username == f"1060:{A}"
    digest = hmac.new(b"s3cret", f"1060:{A}".encode(), hashlib.sha1).digest()
    assert turn.credential == base64.b64encode(digest).decode()
    assert turn_credentials("s3cret", A, 1060) == (turn.username, turn.credential)


def record(**changes: object) -> CallRecord:
    base = CallRecord(
        id="0190a0b0-0000-7000-8000-0000000000c1", room_id=None, kind="direct", media="video",
        state="ended", initiator_id=A, created_at=T0, answered_at=T0 + timedelta(seconds=2),
        ended_at=T0 + timedelta(seconds=127), end_reason="hangup",
        participants=[CallParticipant(user_id=A, state="left", device_id="s1", joined_at=T0,
                                      left_at=T0 + timedelta(seconds=127)),
                      CallParticipant(user_id=B, state="left", device_id="s2",
                                      joined_at=T0 + timedelta(seconds=2),
                                      left_at=T0 + timedelta(seconds=127))])
    return CallRecord(**{**{f: getattr(base, f) for f in base.__struct_fields__}, **changes})


def test_the_view_is_for_participants_only_with_durations() -> None:
    view = visible_call(record(), B)
    assert view.duration == 125.0
    assert [p.duration for p in view.participants] == [127.0, 125.0]
    assert not hasattr(view.participants[0], "device_id")
    with pytest.raises(NotFound):
        visible_call(record(), "0190a0b0-0000-7000-8000-0000000000ff")
    with pytest.raises(NotFound):
        visible_call(None, A)


@pytest.mark.parametrize(("changes", "text"), [
    ({}, "Video call, 2:05"),
    ({"ended_at": T0 + timedelta(hours=1, seconds=3)}, "Video call, 1:00:01"),
    ({"end_reason": "unanswered", "answered_at": None}, "Missed video call"),
    ({"end_reason": "rejected", "media": "audio"}, "Declined audio call"),
    ({"end_reason": "cancelled"}, "Cancelled video call"),
])
def test_summary_lines(changes: dict[str, object], text: str) -> None:
    assert summary(record(**changes)) == text
