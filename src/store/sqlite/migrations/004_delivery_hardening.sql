-- Issue 11, delivery side.
--
-- One row per delivering process, stamped by the database's clock every second: a worker whose
-- heartbeat is older than a few seconds has died, and its claims are taken over at once instead
-- of when their lease runs out.
CREATE TABLE workers (
  id           TEXT PRIMARY KEY,
  started_at   INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
);

-- The worker (workers.id) holding the lease; lease_owner stays the token of the claim itself.
ALTER TABLE webhooks ADD COLUMN lease_worker TEXT;
-- When the current run of failures began: the schedule's whole span must pass before a webhook is
-- disabled, whatever Retry-After said in between.
ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;

-- A record created by a webhook registration (open records mode) carries the registration's clock,
-- not a change: until its first change, a change in that same millisecond still counts as newer.
ALTER TABLE records ADD COLUMN placeholder INTEGER NOT NULL DEFAULT 0;
