-- webhooks_enabled_orcid (migration 005) answered only the upstream poller's "which of these iDs
-- have an enabled webhook", which webhooks_orcid answers as well (it stops at each iD's first
-- enabled webhook). Dropped on both databases so that their schemas stay alike; on PostgreSQL it
-- cost the most: every update it cannot do in place wrote an entry into it.
DROP INDEX webhooks_enabled_orcid;
