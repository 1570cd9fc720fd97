"""The Socket.IO gateway: thin namespaces that authenticate, decode and hand off to actors."""
