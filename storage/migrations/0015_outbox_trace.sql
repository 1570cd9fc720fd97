-- Tracing: the W3C trace context (`traceparent`, e.g. 00-<trace id>-<span id>-01) an outbox row
-- was written under, when OpenTelemetry tracing was on and the write happened inside a trace
-- (storage/postgres/outbox.py). The relay publishes it with the row's events (a Kafka header,
-- or alongside the event on the in-process bus) so that consumers continue that trace. NULL
-- when tracing was off or the write had no trace. A chat batch row (several message.sent
-- events, storage/postgres/message_batches.py) holds the traceparent of the batch's first
-- message that had one. Adding a nullable column without a default rewrites nothing.
ALTER TABLE outbox ADD COLUMN traceparent text;
