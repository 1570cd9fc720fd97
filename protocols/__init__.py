"""Wire shapes: msgspec Structs for REST bodies, Socket.IO payloads, events and actor messages.

No I/O here; only the standard library and msgspec may be imported.
"""
