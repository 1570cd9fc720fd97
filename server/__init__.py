"""Composition root and edges: config, app factory, REST handlers, gateway, auth, CLI."""

__version__ = "0.1.0"
