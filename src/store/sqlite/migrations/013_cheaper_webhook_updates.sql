-- webhooks_enabled_orcid (migration 005) answered only the upstream poller's "which of these iDs
-- have an enabled webhook", which webhooks_orcid answers as well (up to each iD's first enabled
-- webhook). Dropped on both databases so that their schemas stay alike; on PostgreSQL it cost the
-- most (see its migration 013, which also leaves room on its pages for cheaper updates).
DROP INDEX webhooks_enabled_orcid;
