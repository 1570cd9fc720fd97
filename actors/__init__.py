"""The actor runtime and the actor kinds (UserActor, RoomActor, CallActor).

Pure asyncio: actors import only `protocols` and receive their ports at construction. See
ARCHITECTURE.md ("Actors") for the model: virtual actors addressed by kind and key, one
message at a time, bounded mailboxes, supervision and passivation.
"""
