"""Create the event topics at start when they are missing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import IncompatibleBrokerVersion, TopicAlreadyExistsError, for_code

log = logging.getLogger("hubbub.events.kafka")


async def ensure_topics(bootstrap_servers: str, topics: Sequence[str], *, partitions: int,
                        replication_factor: int, client_id: str = "hubbub") -> list[str]:
    """Create those of `topics` the cluster lacks; returns the names this call created.

    A topic created meanwhile by another node counts as present ("already exists" is fine).
    A broker without the CreateTopics API (librdkafka's mock cluster, which names no controller
    either) gets a warning: it creates topics on first use, with its own partition count.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=client_id)
    try:
        await admin.start()
    except BaseException:  # no broker answered: leave nothing behind (the caller may retry)
        with contextlib.suppress(Exception):
            await admin.close()
        raise
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return []
        try:
            response = await admin.create_topics(
                [NewTopic(t, partitions, replication_factor) for t in missing])
        # aiokafka raises AttributeError when the metadata names no controller.
        except (IncompatibleBrokerVersion, AttributeError) as exc:
            log.warning("cannot create Kafka topics here; relying on auto-creation",
                        extra={"topics": missing, "error": f"{type(exc).__name__}: {exc}"})
            return []
        created = []
        for topic, code, *rest in response.topic_errors:
            if code == 0:
                created.append(topic)
            elif code != TopicAlreadyExistsError.errno:
                raise for_code(code)(f"creating topic {topic}: {rest[0] if rest else code}")
        if created:
            log.info("created Kafka topics", extra={"topics": created,
                                                   "partitions": partitions})
        return created
    finally:
        await admin.close()
