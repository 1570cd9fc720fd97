"""Operational endpoints: /health, /ready, /info, /metrics."""
