"""Domain events: the bus port, the outbox relay and the consumer plumbing."""
