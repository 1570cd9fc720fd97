"""`rate_limit.reached` for publishers that learn of a limit outside a failed attempt.

A publisher whose target refuses a request for its rate limit raises
`PublishFailed("rate_limited", ..., permanent=False, retry_after=seconds)`: the scheduler then
reports `rate_limit.reached` itself, in the transaction that records the attempt, and queues
the target until the reset. This reporter is for the other case, a limit seen on a success
(`x-rate-limit-remaining: 0`): the publisher says so here, and the event goes to the outbox on
its own. Publishers get it from `app[RATE_LIMIT_REPORTER]` (server.scheduling.keys).
"""

from __future__ import annotations

from datetime import UTC, datetime

from actors.clock import Clock
from protocols.events import RateLimitReached, envelope
from server.scheduling.storage_ports import ClaimStore


class RateLimitReporter:
    def __init__(self, claims: ClaimStore, clock: Clock) -> None:
        self._claims = claims
        self._clock = clock

    async def reached(self, *, kind: str, user_id: str, connection_id: str | None = None,
                      scheduled_post_id: str | None = None, reset_at: datetime | None = None,
                      limit: int | None = None, remaining: int | None = None) -> None:
        """Append one `rate_limit.reached` event (keyed by the connection, else the user).
        Raises when the outbox cannot be written."""
        now = datetime.fromtimestamp(self._clock.time(), UTC)
        event = RateLimitReached(kind=kind, user_id=user_id, connection_id=connection_id,
                                 scheduled_post_id=scheduled_post_id, reset_at=reset_at,
                                 limit=limit, remaining=remaining)
        await self._claims.emit(envelope(event, actor_id=user_id, occurred_at=now))
