"""RoomActor with in-memory ports and a manual clock: sequence, idempotency, membership,
typing, joins, read receipts, notifications, crashes and a second activation's messages in
between. Messages in flight: test_room_pipelining.py."""

from __future__ import annotations

import asyncio

import pytest

from actors.errors import ActorCrashed, Rejected
from actors.room import RoomActor
from protocols.chat import Message
from protocols.ids import new_id
from protocols.room_messages import (
    JoinResult,
    JoinRoom,
    MarkRead,
    MembershipChanged,
    RoomMember,
    SendMessage,
    SetTyping,
)
from tests.unit.chat.room_rig import Rig, rig, send, users

__all__ = ["rig"]  # the fixture


class HoleyHistory:
    """A hot history that lost every third message (as after a Redis hiccup)."""

    def __init__(self) -> None:
        self.cached: list[Message] = []
        self.reads = 0

    async def append(self, message: Message) -> None:
        if message.seq % 3:
            self.cached.append(message)

    async def after(self, room_id: str, after_seq: int, limit: int) -> list[Message]:
        self.reads += 1
        return [m for m in self.cached if m.seq > after_seq][:limit]


# -- sequence ---------------------------------------------------------------------------------


async def test_200_concurrent_sends_from_10_senders_get_seq_1_to_200(rig: Rig) -> None:
    senders = users(10)
    ref = rig.room(senders)
    asks = [send(ref, s, f"{s}-{i:03d}", f"{i}") for i in range(20) for s in senders]
    replies = await asyncio.gather(*asks)
    assert sorted(m.seq for m in replies) == list(range(1, 201))
    assert rig.stored_seqs(ref) == list(range(1, 201))
    # Broadcast in seq order, and each sender's messages kept their sending order.
    live = [e["message"]["seq"] for e in rig.broadcaster.events("message:new")]
    assert live == list(range(1, 201))
    for sender in senders:
        mine = [m for m in replies if m.sender_id == sender]
        assert [m.client_id for m in sorted(mine, key=lambda m: m.seq)] == \
            [f"{sender}-{i:03d}" for i in range(20)]


async def test_a_message_is_stored_before_the_reply_and_shaped_for_the_socket(rig: Rig) -> None:
    ann, bob = users(2)
    ref = rig.room([ann, bob])
    message = await send(ref, ann, "c1", "hello")
    assert rig.world.rooms[ref.key].messages[1] == message
    assert (message.room_id, message.seq, message.sender_id, message.text) == \
        (ref.key, 1, ann, "hello")
    assert message.created_at.timestamp() == rig.clock.time()
    [(room_id, event, data)] = rig.broadcaster.room_events
    assert (room_id, event) == (ref.key, "message:new")
    assert data["message"]["id"] == message.id and data["message"]["created_at"].endswith("Z")


async def test_a_resend_with_the_same_client_id_returns_the_first_message(rig: Rig) -> None:
    ann, bob = users(2)
    ref = rig.room([ann, bob])
    first = await send(ref, ann, "same", "first text")
    again = await send(ref, ann, "same", "edited text")
    assert again == first
    # Another sender may use the same client_id: it is unique per sender.
    bobs = await send(ref, bob, "same", "bob's")
    assert bobs.seq == 2
    assert (await send(ref, ann, "next")).seq == 3
    assert rig.stored_seqs(ref) == [1, 2, 3]
    assert len(rig.broadcaster.events("message:new")) == 3


async def test_invalid_text_is_rejected_without_using_a_seq(rig: Rig) -> None:
    ann, _ = users(2)
    ref = rig.room([ann])
    with pytest.raises(Rejected) as refused:
        await send(ref, ann, "c", "")
    assert refused.value.code == "invalid"
    assert (await send(ref, ann, "c2")).seq == 1


# -- membership -------------------------------------------------------------------------------


async def test_non_members_are_refused_everything(rig: Rig) -> None:
    ann, eve = users(2)
    ref = rig.room([ann])
    await send(ref, ann, "c1")
    for message in (SendMessage(user_id=eve, client_id="x", text="hi"),
                    JoinRoom(user_id=eve, since_seq=0), MarkRead(user_id=eve, seq=1)):
        with pytest.raises(Rejected) as refused:
            await ref.ask(message, timeout=5)
        assert refused.value.code == "not_member"
    await ref.tell(SetTyping(user_id=eve, active=True))
    await rig.system.settled()
    assert rig.broadcaster.events("typing") == []
    assert rig.stored_seqs(ref) == [1]


async def test_an_unknown_room_and_a_malformed_key_look_the_same(rig: Rig) -> None:
    ann = users(1)[0]
    loads = rig.store.loads
    with pytest.raises(Rejected) as missing:
        await rig.system.ref(RoomActor, new_id()).ask(JoinRoom(user_id=ann), timeout=5)
    with pytest.raises(Rejected) as malformed:
        await rig.system.ref(RoomActor, "not-a-uuid").ask(JoinRoom(user_id=ann), timeout=5)
    assert missing.value.code == malformed.value.code == "not_member"
    # The unknown room was looked up once (on start; the message needs no second look); the
    # malformed key never reached storage.
    assert rig.store.loads == loads + 1


async def test_a_room_created_after_activation_is_found(rig: Rig) -> None:
    ann = users(1)[0]
    room_id = new_id()
    ref = rig.system.ref(RoomActor, room_id)
    with pytest.raises(Rejected):
        await ref.ask(JoinRoom(user_id=ann), timeout=5)
    rig.world.add_room(room_id, [ann])
    assert await ref.ask(JoinRoom(user_id=ann), timeout=5) == JoinResult(last_seq=0, missed=[])


async def test_removed_members_leave_the_live_stream_even_if_the_room_was_idle(
        rig: Rig) -> None:
    ann, bob = users(2)
    ref = rig.room([ann, bob])
    del rig.world.rooms[ref.key].members[bob]  # removed while no activation was live
    await ref.ask(MembershipChanged(removed_user_ids=[bob]), timeout=5)
    assert rig.sockets.left == [(ref.key, bob)]


async def test_membership_changed_reloads_members(rig: Rig) -> None:
    ann, bob, cat = users(3)
    ref = rig.room([ann, bob])
    await ref.tell(SetTyping(user_id=bob, active=True))
    await rig.system.settled()
    room = rig.world.rooms[ref.key]
    room.members[cat] = RoomMember(user_id=cat, role="member")
    del room.members[bob]
    await ref.tell(MembershipChanged())
    assert (await send(ref, cat, "c")).seq == 1
    with pytest.raises(Rejected):
        await send(ref, bob, "c")
    # bob's typing ended with his membership: said so, and no expiry is left for him; his
    # sockets were taken out of the room's live stream.
    assert typing_events(rig) == [(bob, True), (bob, False)]
    assert rig.sockets.left == [(ref.key, bob)]
    assert not rig.instances[0].context.has_timers


# -- typing -----------------------------------------------------------------------------------


def typing_events(rig: Rig) -> list[tuple[str, bool]]:
    return [(e["user_id"], e["active"]) for e in rig.broadcaster.events("typing")]


async def test_typing_expires_after_5_seconds_unless_renewed(rig: Rig) -> None:
    ann, bob = users(2)
    ref = rig.room([ann, bob])
    await ref.tell(SetTyping(user_id=ann, active=True))
    await rig.system.settled()
    assert typing_events(rig) == [(ann, True)]
    rig.clock.advance(4)
    await ref.tell(SetTyping(user_id=ann, active=True))  # renewal: no new event
    await rig.system.settled()
    rig.clock.advance(4)
    await rig.system.settled()
    assert typing_events(rig) == [(ann, True)]
    rig.clock.advance(1.5)
    await rig.system.settled()
    assert typing_events(rig) == [(ann, True), (ann, False)]
    assert not rig.instances[0].context.has_timers


async def test_typing_stops_explicitly_and_when_sending(rig: Rig) -> None:
    ann, bob = users(2)
    ref = rig.room([ann, bob])
    await ref.tell(SetTyping(user_id=ann, active=True))
    await ref.tell(SetTyping(user_id=ann, active=False))
    await ref.tell(SetTyping(user_id=ann, active=False))  # not typing: nothing to say
    await ref.tell(SetTyping(user_id=bob, active=True))
    await send(ref, bob, "c1")
    rig.clock.advance(10)  # the cancelled timers fire nothing
    await rig.system.settled()
    assert typing_events(rig) == [(ann, True), (ann, False), (bob, True), (bob, False)]
    events = [e for _, e, _ in rig.broadcaster.room_events]
    assert events.index("typing", 3) < events.index("message:new")


# -- joins ------------------------------------------------------------------------------------


async def test_join_replays_exactly_what_was_missed_in_order(rig: Rig) -> None:
    ann, bob = users(2)
    ref = rig.room([ann, bob])
    sent = [await send(ref, ann, f"c{i}") for i in range(10)]
    join = await ref.ask(JoinRoom(user_id=bob, since_seq=4), timeout=5)
    assert join == JoinResult(last_seq=10, missed=sent[4:])
    assert await ref.ask(JoinRoom(user_id=bob), timeout=5) == JoinResult(last_seq=10, missed=[])
    for since in (10, 99):
        assert (await ref.ask(JoinRoom(user_id=bob, since_seq=since), timeout=5)).missed == []
    assert (await ref.ask(JoinRoom(user_id=bob, since_seq=0), timeout=5)).missed == sent


async def test_join_replays_at_most_the_cap_oldest_first() -> None:
    class SmallRoom(RoomActor):
        REPLAY_CAP = 3

    rig = Rig(actor_class=SmallRoom)
    ann = users(1)[0]
    ref = rig.room([ann])
    for i in range(8):
        await send(ref, ann, f"c{i}")
    join = await ref.ask(JoinRoom(user_id=ann, since_seq=2), timeout=5)
    assert join.last_seq == 8 and [m.seq for m in join.missed] == [3, 4, 5]
    await rig.system.stop()


async def test_join_falls_back_to_the_store_when_the_hot_history_has_holes() -> None:
    history = HoleyHistory()
    rig = Rig(history=history)
    ann = users(1)[0]
    ref = rig.room([ann])
    for i in range(7):
        await send(ref, ann, f"c{i}")
    join = await ref.ask(JoinRoom(user_id=ann, since_seq=0), timeout=5)
    assert [m.seq for m in join.missed] == [1, 2, 3, 4, 5, 6, 7]
    # After 3 the cache holds 4, 5 and 7 but not 6: the store answers again.
    assert [m.seq for m in (await ref.ask(JoinRoom(user_id=ann, since_seq=3),
                                          timeout=5)).missed] == [4, 5, 6, 7]
    assert history.reads == 2
    await rig.system.stop()


async def test_join_is_served_by_the_hot_history_when_it_is_complete(rig: Rig) -> None:
    ann = users(1)[0]
    ref = rig.room([ann])
    for i in range(5):
        await send(ref, ann, f"c{i}")
    rig.world.rooms[ref.key].messages.clear()  # the store cannot answer any more
    assert [m.seq for m in (await ref.ask(JoinRoom(user_id=ann, since_seq=1),
                                          timeout=5)).missed] == [2, 3, 4, 5]


# -- read receipts ----------------------------------------------------------------------------


async def test_read_positions_only_move_forward_and_are_broadcast(rig: Rig) -> None:
    ann, bob = users(2)
    ref = rig.room([ann, bob])
    for i in range(5):
        await send(ref, ann, f"c{i}")
    await ref.ask(MarkRead(user_id=bob, seq=3), timeout=5)
    await ref.ask(MarkRead(user_id=bob, seq=2), timeout=5)  # backwards: ignored
    await ref.ask(MarkRead(user_id=bob, seq=3), timeout=5)  # same: ignored
    await ref.ask(MarkRead(user_id=bob, seq=50), timeout=5)  # past the end: up to last_seq
    reads = rig.broadcaster.events("message:read")
    assert reads == [{"room_id": ref.key, "user_id": bob, "seq": 3},
                     {"room_id": ref.key, "user_id": bob, "seq": 5}]
    assert rig.world.rooms[ref.key].members[bob].last_read_seq == 5
    # The sender has read up to their own message without saying so.
    assert rig.world.rooms[ref.key].members[ann].last_read_seq == 5


# -- notifications ----------------------------------------------------------------------------


async def test_offline_members_are_notified_in_one_batch_never_the_sender(rig: Rig) -> None:
    ann, bob, cat, dan = users(4)
    ref = rig.room([ann, bob, cat, dan])
    rig.presence.online_users = {ann, cat}
    message = await send(ref, ann, "c1")
    assert rig.notifier.calls == [(sorted([bob, dan]), message)]
    # bob and dan hold an unread notification for the room now: nothing more for them...
    await send(ref, cat, "c2")
    assert len(rig.notifier.calls) == 1
    # ...until they read the room; and someone who goes offline is notified once (presence
    # is looked up at most once per PRESENCE_CACHE seconds).
    await ref.ask(MarkRead(user_id=bob, seq=2), timeout=5)
    rig.presence.online_users = {ann}
    assert rig.presence.lookups == 1
    rig.clock.advance(RoomActor.PRESENCE_CACHE)
    third = await send(ref, ann, "c3")
    assert rig.notifier.calls[1:] == [(sorted([bob, cat]), third)]
    rig.presence.online_users = {ann, bob, cat, dan}
    rig.clock.advance(RoomActor.PRESENCE_CACHE)
    await send(ref, ann, "c4")
    # Every other member holds an unread notification: not even a presence lookup.
    assert len(rig.notifier.calls) == 2 and rig.presence.lookups == 2


async def test_a_failing_push_does_not_fail_the_message(rig: Rig) -> None:
    ann, bob = users(2)
    ref = rig.room([ann, bob])
    rig.broadcaster.fail = True
    message = await send(ref, ann, "c1")
    assert rig.stored_seqs(ref) == [1] and message.seq == 1
    assert rig.system.stats.restarts == 0


# -- crashes, restarts and the (room, seq) fence -----------------------------------------------


async def test_a_crash_after_the_commit_keeps_the_sequence_continuous(rig: Rig) -> None:
    ann = users(1)[0]
    ref = rig.room([ann])
    await send(ref, ann, "c1")
    rig.store.fail_next_append = "after"
    with pytest.raises(ActorCrashed):
        await send(ref, ann, "c2")
    assert rig.system.stats.restarts == 1
    # The restarted actor reloaded last_seq = 2 from storage; the retry of c2 finds it.
    retried = await send(ref, ann, "c2")
    assert retried.seq == 2
    assert (await send(ref, ann, "c3")).seq == 3
    assert rig.stored_seqs(ref) == [1, 2, 3]


async def test_a_message_stored_but_never_pushed_is_pushed_on_its_resend(rig: Rig) -> None:
    # The node holding the room died between the commit and the push: the client resends.
    ann = users(1)[0]
    ref = rig.room([ann])
    rig.store.fail_next_append = "after"
    with pytest.raises(ActorCrashed):
        await send(ref, ann, "c1")
    assert not rig.broadcaster.room_events
    await send(ref, ann, "c1")
    pushed = [d["message"]["seq"] for _, e, d in rig.broadcaster.room_events
              if e == "message:new"]
    assert pushed == [1]
    await send(ref, ann, "c1")  # pushed once is enough: a third try pushes nothing
    assert len([e for _, e, _ in rig.broadcaster.room_events if e == "message:new"]) == 1


async def test_a_crash_before_the_commit_leaves_no_gap(rig: Rig) -> None:
    ann = users(1)[0]
    ref = rig.room([ann])
    await send(ref, ann, "c1")
    rig.store.fail_next_append = "before"
    with pytest.raises(ActorCrashed):
        await send(ref, ann, "c2")
    assert (await send(ref, ann, "c2")).seq == 2
    assert rig.stored_seqs(ref) == [1, 2]


async def test_a_message_of_another_activation_in_between_takes_its_own_seq(
        rig: Rig) -> None:
    ann = users(1)[0]
    ref = rig.room([ann])
    await send(ref, ann, "c1")
    rig.store.steal_next_seq = 1  # a second activation writes seq 2 first
    message = await send(ref, ann, "c2")
    assert message.seq == 3
    assert rig.stored_seqs(ref) == [1, 2, 3]
    assert rig.system.stats.restarts == 0
    assert (await send(ref, ann, "c3")).seq == 4


async def test_passivation_and_reactivation_keep_the_sequence(rig: Rig) -> None:
    ann = users(1)[0]
    ref = rig.room([ann])
    await send(ref, ann, "c1")
    await rig.system.settled()
    rig.clock.advance(RoomActor.idle_timeout or 0)
    await rig.system.settled()
    assert not rig.system.is_live(ref)
    assert (await send(ref, ann, "c2")).seq == 2
    assert len(rig.instances) == 2
