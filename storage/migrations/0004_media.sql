-- Media: presigned uploads that were never completed are swept once their URL has long
-- expired (server.media.service.MediaService.sweep_abandoned); this finds them cheaply.
CREATE INDEX media_pending_idx ON media (created_at) WHERE status = 'pending';
