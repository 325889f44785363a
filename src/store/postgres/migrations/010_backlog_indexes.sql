-- Issue 12: the oldest notification owed is the first entry of an index on pending_since over the
-- owed rows. Unlike SQLite, no index on lease_until: a claim only sets the lease columns, so it stays
-- a HOT update (no index touched); the in-flight count runs in the server, not on the event loop.
CREATE INDEX webhooks_owed_since ON webhooks(pending_since) WHERE enabled = 1 AND due_at IS NOT NULL;
