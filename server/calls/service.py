"""The rules of calls over REST: ICE servers with TURN REST credentials, and a call's record
for its participants. Plus the one-line summary a call leaves in its room's history."""

from __future__ import annotations

import base64
import hashlib
import hmac

from protocols.call_messages import CallRecord
from protocols.calls import CallParticipantView, CallView, IceServer, IceServers
from protocols.ids import is_id
from server.config import Settings
from server.http.problems import NotFound


def _urls(raw: str) -> list[str]:
    return [u.strip() for u in raw.split(",") if u.strip()]


def turn_credentials(secret: str, user_id: str, expiry: int) -> tuple[str, str]:
    """The TURN REST scheme (coturn `use-auth-secret`): username `<expiry unix>:<user id>`,
    credential base64(HMAC-SHA1(secret, username))."""
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(settings: Settings, user_id: str, now: float) -> IceServers:
    ttl = settings.turn_credential_ttl
    servers: list[IceServer] = []
    if stun := _urls(settings.stun_urls):
        servers.append(IceServer(urls=stun))
    if turn := _urls(settings.turn_urls):
        if settings.turn_secret:
            username, credential = turn_credentials(settings.turn_secret, user_id,
                                                    int(now) + ttl)
            servers.append(IceServer(urls=turn, username=username, credential=credential))
        else:  # a TURN server without auth (development)
            servers.append(IceServer(urls=turn))
    return IceServers(ice_servers=servers, ttl=ttl)


def call_view(record: CallRecord) -> CallView:
    def seconds(start: object, end: object) -> float | None:
        if start is None or end is None:
            return None
        return round((end - start).total_seconds(), 3)  # type: ignore[operator]

    return CallView(
        id=record.id, room_id=record.room_id, media=record.media, state=record.state,
        initiator_id=record.initiator_id, created_at=record.created_at,
        answered_at=record.answered_at, ended_at=record.ended_at, end_reason=record.end_reason,
        duration=seconds(record.answered_at, record.ended_at),
        participants=[CallParticipantView(user_id=p.user_id, state=p.state,
                                          joined_at=p.joined_at, left_at=p.left_at,
                                          duration=seconds(p.joined_at, p.left_at))
                      for p in record.participants])


def visible_call(record: CallRecord | None, viewer_id: str) -> CallView:
    """The call as a participant sees it; 404 for anyone else (and for no such call)."""
    if record is None or all(p.user_id != viewer_id for p in record.participants):
        raise NotFound("No such call, or you were not in it", code="call_not_found")
    return call_view(record)


def call_key(call_id: str) -> str | None:
    return call_id.lower() if is_id(call_id) else None


def summary(record: CallRecord) -> str:
    """The system message a finished call leaves in its room, e.g. "Video call, 2:05"."""
    media = record.media.capitalize()
    match record.end_reason:
        case "unanswered":
            return f"Missed {record.media} call"
        case "rejected":
            return f"Declined {record.media} call"
        case "cancelled":
            return f"Cancelled {record.media} call"
    if record.answered_at is None or record.ended_at is None:
        return f"{media} call"
    total = int((record.ended_at - record.answered_at).total_seconds())
    hours, rest = divmod(total, 3600)
    clock = f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else \
        f"{rest // 60}:{rest % 60:02d}"
    return f"{media} call, {clock}"
