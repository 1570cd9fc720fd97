"""Redis: the shared client and the adapters built on it."""
