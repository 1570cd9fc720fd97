"""Call users: socket users that place 1:1 calls to each other and answer them.

A caller takes an idle call user of this process as its callee (so a callee is never busy),
then: `call:invite` -> the callee gets `call:incoming` and sends `call:accept` (or
`call:reject`) -> the caller gets `call:accepted`, sends its `call:signal` offer, gets the
answer, trickles two ICE candidates, holds the call for LOADTEST_CALL_HOLD seconds and sends
`call:hangup` -> the callee gets `call:ended`. Besides the acks, each push is reported as
`"<event> delivery"` with its latency from the moment the other side sent what caused it.
"""

from __future__ import annotations

import random
import time
from typing import Any

import gevent
from gevent.event import AsyncResult, Event
from locust import task
from locust_settings import SETTINGS
from locust_sio import report
from locust_socket import SocketUser

SDP = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
       "a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
       "a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=setup:actpass\r\na=mid:0\r\n"
       "a=ice-ufrag:lt00\r\na=ice-pwd:loadtestloadtestloadtest\r\n")


class CallBoard:
    """Idle call users of this process, and when each call step was sent (by call id or
    callee), so the other side can time its delivery."""

    def __init__(self) -> None:
        self.idle: set[CallUser] = set()
        self.sent: dict[tuple[str, str], float] = {}  # (step, call id or user id) -> ns

    def take(self, caller: CallUser) -> CallUser | None:
        callees = [u for u in self.idle
                   if u is not caller and u.ready.is_set() and not u.stopping]
        if not callees:
            return None
        callee = random.choice(callees)
        self.idle.discard(callee)
        self.idle.discard(caller)
        caller.in_call = callee.in_call = True
        caller.free.clear()
        callee.free.clear()
        caller.calls += 1
        callee.calls += 1
        return callee

    def stamp(self, step: str, key: str) -> None:
        self.sent[(step, key)] = time.time_ns()

    def delivered(self, user: CallUser, event: str, step: str, key: str) -> None:
        sent = self.sent.pop((step, key), None)
        if sent is not None:
            report(user.environment, f"{event} delivery", max(0.0, (time.time_ns() - sent) / 1e6))


CALLS = CallBoard()


class CallUser(SocketUser):
    """Places calls (most answered, some declined) and answers the calls it gets."""

    weight = 1
    pauses = (3.0, 10.0)
    prefix = "caller"

    def started(self) -> None:
        self.in_call = False
        self.free = Event()  # set while not in a call
        self.free.set()
        self.calls = 0  # calls this user was taken into, as caller or callee
        self.incoming: str | None = None  # the call id this user was rung for
        self.answer = "accept"  # what to do with the next call:incoming
        self.inbox: dict[tuple[str, str], AsyncResult] = {}  # (event, call id) -> push
        CALLS.idle.add(self)

    def on_stop(self) -> None:
        """Hang up the way people do: a call in progress ends first (bounded), so that a
        run's end is not counted as calls cut off."""
        self.stopping = True
        CALLS.idle.discard(self)
        if getattr(self, "in_call", False):
            self.free.wait(SETTINGS.ack_timeout + SETTINGS.call_hold[1])
        super().on_stop()

    def storm_drop(self, back_in: float) -> bool:
        if self.in_call:
            return False  # a dropped call is a cancelled call: not what a storm measures
        CALLS.idle.discard(self)
        return super().storm_drop(back_in)

    def back(self) -> None:
        if not self.in_call and not self.stopping:
            CALLS.idle.add(self)

    def slot(self, event: str, call_id: str) -> AsyncResult:
        return self.inbox.setdefault((event, call_id), AsyncResult())

    def await_push(self, event: str, call_id: str) -> Any:
        """The push `event` of this call, or None (reported as a failed delivery)."""
        try:
            return self.slot(event, call_id).get(timeout=SETTINGS.ack_timeout)
        except gevent.Timeout:
            report(self.environment, f"{event} delivery", SETTINGS.ack_timeout * 1000,
                   exception=TimeoutError(f"no {event} within {SETTINGS.ack_timeout:g}s"))
            return None

    # -- caller -------------------------------------------------------------------------

    @task(3)
    def call(self) -> None:
        self.place("accept")

    @task(1)
    def declined_call(self) -> None:
        self.place("reject")

    def place(self, answer: str) -> None:
        if self.in_call or not self.ready.is_set():
            return
        callee = CALLS.take(self)
        # LOADTEST_TOUR: every task must run, so wait (a while) for someone to call.
        deadline = time.monotonic() + (SETTINGS.ack_timeout if SETTINGS.tour else 0)
        while callee is None and time.monotonic() < deadline:
            gevent.sleep(0.2)
            if self.in_call:  # rung meanwhile: a callee now
                return
            callee = CALLS.take(self)
        if callee is None:
            return
        callee.answer = answer
        callee_calls = callee.calls
        call_id = ""
        try:
            CALLS.stamp("invite", callee.me)
            ack = self.emit("call:invite", {"user_ids": [callee.me],
                                            "media": random.choice(["audio", "video"])})
            if ack is None:
                return
            call_id = ack["call_id"]
            if answer == "reject":
                self.await_push("call:rejected", call_id)
            else:
                self.talk(call_id, callee)
        finally:
            for key in [k for k in self.inbox if k[1] == call_id]:
                del self.inbox[key]
            self.in_call = False
            self.free.set()
            if self.ready.is_set() and not self.stopping:
                CALLS.idle.add(self)
            # Declined: the callee is free once it has answered. Answered: it is free on
            # call:ended, or after a while if that never came.
            gevent.spawn_later(0 if answer == "reject" or not call_id else SETTINGS.ack_timeout,
                               callee.release, callee_calls)

    def talk(self, call_id: str, callee: CallUser) -> None:
        if self.await_push("call:accepted", call_id) is None:
            self.emit("call:hangup", {"call_id": call_id})
            return
        self.signal(call_id, callee.me, "offer", {"type": "offer", "sdp": SDP})
        self.await_push("call:signal", call_id)  # the answer
        for number in range(2):
            self.signal(call_id, callee.me, "ice", {
                "candidate": f"candidate:{number} 1 udp 2122260223 127.0.0.1 {50000 + number}"
                             " typ host", "sdpMid": "0", "sdpMLineIndex": 0})
        gevent.sleep(random.uniform(*SETTINGS.call_hold))
        CALLS.stamp("hangup", call_id)
        self.emit("call:hangup", {"call_id": call_id})

    def signal(self, call_id: str, to: str, kind: str, payload: dict[str, Any]) -> None:
        self.emit("call:signal", {"call_id": call_id, "to_user_id": to, "kind": kind,
                                  "payload": payload | {"sent_ns": time.time_ns()}})

    # -- callee, and pushes to either side ----------------------------------------------

    def call_over(self) -> None:
        self.in_call = False
        self.incoming = None
        self.free.set()
        if self.ready.is_set() and not self.stopping:
            CALLS.idle.add(self)

    def release(self, calls: int) -> None:
        """Free this callee unless it is in another call meanwhile."""
        if self.in_call and self.calls == calls:
            self.call_over()

    def on_push(self, event: str, data: Any) -> None:
        call_id = data.get("call_id", "") if isinstance(data, dict) else ""
        if event == "call:incoming":
            CALLS.delivered(self, event, "invite", self.me)
            self.incoming = call_id
            gevent.spawn(self.pick_up, call_id, self.answer)
        elif event == "call:accepted":
            CALLS.delivered(self, event, "accept", call_id)
            self.slot(event, call_id).set(data)
        elif event == "call:rejected":
            CALLS.delivered(self, event, "reject", call_id)
            self.slot(event, call_id).set(data)
        elif event == "call:signal":
            sent = data.get("payload", {}).get("sent_ns")
            if isinstance(sent, int):
                report(self.environment, "call:signal delivery",
                       max(0.0, (time.time_ns() - sent) / 1e6))
            if data.get("kind") == "offer":
                gevent.spawn(self.signal, call_id, data["from_user_id"], "answer",
                             {"type": "answer", "sdp": SDP})
            elif data.get("kind") == "answer":
                self.slot(event, call_id).set(data)
        elif event == "call:ended" and call_id and call_id == self.incoming:
            CALLS.delivered(self, event, "hangup", call_id)
            self.call_over()

    def pick_up(self, call_id: str, answer: str) -> None:
        CALLS.stamp(answer, call_id)
        self.emit(f"call:{answer}", {"call_id": call_id})
