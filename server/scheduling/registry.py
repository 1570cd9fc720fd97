"""The publishers of each target kind, and the targets a scheduled post may name.

Another area plugs a publisher in from its wiring (any time before the app starts):

    from server.scheduling.keys import add_publisher
    add_publisher(app, WebhookPublisher(...), connection_check=connections.owns)

`connection_check(user_id, connection_id)` answers whether that connection exists, is the
user's and is of the publisher's kind; scheduling then refuses other ids with 422
`unknown_connection`. A kind with no publisher registered is refused with 422
`unsupported_target`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from protocols.problems import FieldError
from protocols.schedule_records import TargetDraft
from protocols.scheduling import TargetSpec
from server.http.problems import ValidationFailed
from server.scheduling.ports import Publisher

ConnectionCheck = Callable[[str, str], Awaitable[bool]]
DEFAULT_TARGETS = (TargetSpec(kind="hubbub"),)


class PublishingRegistry:
    def __init__(self) -> None:
        self.publishers: dict[str, Publisher] = {}
        self.connection_checks: dict[str, ConnectionCheck] = {}

    def add(self, publisher: Publisher, *,
            connection_check: ConnectionCheck | None = None) -> None:
        self.publishers[publisher.kind] = publisher
        if connection_check is not None:
            self.connection_checks[publisher.kind] = connection_check

    async def targets(self, user_id: str,
                      specs: Sequence[TargetSpec] | None) -> list[TargetDraft]:
        """The targets to store for `specs` (default: Hubbub only). 422 naming the first bad
        one: `unsupported_target`, `invalid_target` (hubbub takes no connection_id),
        `connection_required`, `duplicate_target`, `unknown_connection`."""
        specs = DEFAULT_TARGETS if specs is None else specs
        seen: set[tuple[str, str | None]] = set()
        drafts = []
        for index, spec in enumerate(specs):
            field = f"targets[{index}]"
            connection = spec.connection_id.lower() if spec.connection_id else None
            if spec.kind not in self.publishers:
                raise _invalid(f"{field}.kind", f"Publishing to {spec.kind} is not available "
                               "on this server", "unsupported_target")
            if spec.kind == "hubbub" and connection is not None:
                raise _invalid(f"{field}.connection_id", "A hubbub target takes no "
                               "connection_id", "invalid_target")
            if spec.kind != "hubbub" and connection is None:
                raise _invalid(f"{field}.connection_id", f"A {spec.kind} target needs the "
                               "connection_id of one of your connections",
                               "connection_required")
            if (spec.kind, connection) in seen:
                raise _invalid(field, "This target is listed twice", "duplicate_target")
            seen.add((spec.kind, connection))
            check = self.connection_checks.get(spec.kind)
            if connection is not None and check is not None \
                    and not await check(user_id, connection):
                raise _invalid(f"{field}.connection_id", f"You have no {spec.kind} "
                               "connection with this id", "unknown_connection")
            drafts.append(TargetDraft(kind=spec.kind, connection_id=connection))
        return drafts


def _invalid(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[FieldError(field=field, message=message)])
