-- webhooks_enabled_orcid (migration 005) answered only the upstream poller's "which of these iDs
-- have an enabled webhook", which webhooks_orcid answers as well (it stops at each iD's first
-- enabled webhook). Every update of a row that PostgreSQL cannot do in place (owing a
-- notification, completing a callback) wrote an entry into it too: one index of ten less to write.
DROP INDEX webhooks_enabled_orcid;
