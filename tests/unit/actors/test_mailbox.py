"""The actor mailbox (actors/mailbox.py) behaves as the asyncio.Queue it replaces."""

from __future__ import annotations

import asyncio

import pytest

from actors.mailbox import Mailbox
from tests.support.polling import eventually


async def waiting(box: Mailbox[str], senders: int) -> None:
    """Until `senders` senders found the mailbox full and wait in `put`."""

    async def blocked() -> bool:
        return box.senders_waiting() == senders

    await eventually(blocked, 5, f"{senders} senders waiting")


def test_first_in_first_out_within_its_bound() -> None:
    box: Mailbox[int] = Mailbox(3)
    assert box.empty() and not box.full() and box.qsize() == 0
    for item in (1, 2, 3):
        box.put_nowait(item)
    assert box.full() and box.qsize() == 3
    with pytest.raises(asyncio.QueueFull):
        box.put_nowait(4)
    assert [box.get_nowait() for _ in range(3)] == [1, 2, 3]
    with pytest.raises(asyncio.QueueEmpty):
        box.get_nowait()


def test_zero_means_unbounded() -> None:
    box: Mailbox[int] = Mailbox(0)
    for item in range(5000):
        box.put_nowait(item)
    assert not box.full() and box.qsize() == 5000


async def test_waiting_senders_get_room_in_arrival_order() -> None:
    box: Mailbox[str] = Mailbox(1)
    box.put_nowait("first")
    senders = [asyncio.create_task(box.put(name)) for name in ("a", "b", "c")]
    await waiting(box, 3)
    assert not any(s.done() for s in senders)
    got = [box.get_nowait()]
    for sender in senders:  # each freed slot goes to the longest-waiting sender
        await asyncio.wait_for(sender, 1)
        got.append(box.get_nowait())
    assert got == ["first", "a", "b", "c"]


async def test_a_cancelled_sender_passes_its_turn_on() -> None:
    box: Mailbox[str] = Mailbox(1)
    box.put_nowait("first")
    leaving = asyncio.create_task(box.put("leaving"))
    staying = asyncio.create_task(box.put("staying"))
    await waiting(box, 2)
    assert box.get_nowait() == "first"  # wakes `leaving`...
    leaving.cancel()  # ...which leaves before it runs: `staying` must get the room
    await asyncio.wait_for(staying, 1)
    assert leaving.cancelled()
    assert box.get_nowait() == "staying" and box.empty()
