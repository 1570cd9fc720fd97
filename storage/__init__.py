"""Async adapters behind small ports: Postgres, Redis, S3, Kafka and the embedded defaults."""
