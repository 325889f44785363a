-- Issue 12: /metrics and the overview read the delivery backlog (the oldest notification owed, the
-- callbacks in flight) from every owed row: 23 ms at 1M webhooks with 7,000 owed, on SQLite's event
-- loop. The oldest is the first entry of an index on pending_since over the owed rows; the rows in
-- flight are the leased ones, few at any time (a completion clears lease_until).
CREATE INDEX webhooks_owed_since ON webhooks(pending_since) WHERE enabled = 1 AND due_at IS NOT NULL;
CREATE INDEX webhooks_leased ON webhooks(lease_until) WHERE lease_until IS NOT NULL;
