"""The UserActor tests' harness as a fixture (tests/unit/user_actor/rig.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.user_actor.rig import Harness, build


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = build()
    yield harness
    await harness.system.stop()
