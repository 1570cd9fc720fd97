"""Kafka adapters (aiokafka): the event bus, and creating its topics."""
