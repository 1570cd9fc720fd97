"""The runtime's exceptions. `ActorError` is the one base."""

from __future__ import annotations


class ActorError(Exception):
    """Base of every error the actor runtime raises."""


class AskTimeout(ActorError, TimeoutError):
    """No reply within the ask's timeout. The message may still be processed later."""


class MailboxFull(ActorError):
    """`tell_nowait` found the actor's bounded mailbox full (use `tell` to wait for room)."""


class ActorStopped(ActorError):
    """The actor system is stopping or stopped; the message was not delivered."""


class ActorCrashed(ActorError):
    """`receive` (or `on_start`) raised an unexpected exception while handling this message.

    The actor was restarted from storage; the original exception is the `__cause__`.
    """


class Rejected(ActorError):
    """Raised by an actor to refuse a message for a reason the caller can act on (not a
    member, invalid state...). It reaches the asker unchanged and does NOT restart the actor.
    `code` is stable and machine-readable."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code


class Unavailable(ActorError):
    """The actor could not be reached: its node is gone or leaving and the cluster has not
    settled on a new owner yet. Nothing was done; retry after `retry_after` seconds (asks are
    retried by the caller, idempotently)."""

    def __init__(self, message: str = "", retry_after: float = 1.0) -> None:
        super().__init__(message or "actor unavailable")
        self.retry_after = retry_after
