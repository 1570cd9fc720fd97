"""Shapes shared by many endpoints."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec

from protocols.base import Inbound, Outbound

T = TypeVar("T")


class Page(Outbound, Generic[T]):
    """One page of a list. `next_cursor` is opaque; null means there is nothing after it."""

    items: list[T]
    next_cursor: str | None = None


class PageQuery(Inbound):
    """`?limit=` (1..100, default 20) and `?cursor=` from a previous page."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    cursor: str | None = None
