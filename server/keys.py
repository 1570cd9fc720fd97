"""Typed application keys for the cross-cutting resources every area shares.

Feature areas keep their own keys next to their code (e.g. `server.auth.wiring.AUTH_SERVICE`).
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from aiohttp import web

from server.auth.principal import Principal
from server.config import Settings
from server.http.endpoint import Endpoint
from server.lifecycle import Lifecycle

SETTINGS = web.AppKey("settings", Settings)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
DB_POOL = web.AppKey("db_pool", asyncpg.Pool)
# Verifies a bearer token; raises server.http.problems.Unauthorized when it is not valid.
AUTHENTICATOR = web.AppKey("authenticator", Callable[[str], Principal])
ENDPOINTS = web.AppKey("endpoints", list[Endpoint])
