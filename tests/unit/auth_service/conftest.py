"""The auth service tests' fake world as a fixture (tests/unit/auth_service/world.py)."""

from __future__ import annotations

import pytest

from tests.unit.auth_service.world import World, build_world


@pytest.fixture
def world() -> World:
    return build_world()
