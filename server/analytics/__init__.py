"""Post analytics: per-post metrics in hourly buckets, a user's summary and best times to
post, kept up to date by an event consumer (see consumer.py) and read without table scans."""
