"""The publishing area's app keys, below its routes and its wiring."""

from __future__ import annotations

from aiohttp import web

from server.publishing.service import ConnectionService

CONNECTION_SERVICE = web.AppKey("connection_service", ConnectionService)
