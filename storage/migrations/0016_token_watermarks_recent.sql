-- Every node reads the recent watermarks every few seconds (server/auth/watermark_refresher.py:
-- those with `valid_after` within the access-token TTL, the only ones that can still refuse a
-- live token) to keep them all in Redis. The table has a row per user who ever signed out
-- everywhere, so without this index that read is a scan of all of them. A plain CREATE INDEX:
-- migrations run in a transaction, which CONCURRENTLY cannot; it blocks sign-outs only while
-- one bigint column is indexed.
CREATE INDEX token_watermarks_valid_after_idx ON token_watermarks (valid_after);
