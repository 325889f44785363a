-- Issue 12 (cause 4): the overview, /metrics and the state filters read every webhook (330 ms at
-- 1M, blocking the event loop). The rare states get partial indexes, with exactly the conditions of
-- src/domain/webhook-state.ts (STATE_SQL): their counts read only the rows in that state (covering),
-- and their lists walk them in id order, all clients' (admin) or one client's. The number of
-- webhooks is the sum of clients.webhook_count (007); "enabled, nothing owed" is the rest.
CREATE INDEX webhooks_disabled ON webhooks(id) WHERE enabled = 0;
CREATE INDEX webhooks_failing ON webhooks(id, failed_attempts) WHERE enabled = 1 AND failed_attempts > 0;
CREATE INDEX webhooks_pending ON webhooks(id, failed_attempts, due_at) WHERE enabled = 1 AND failed_attempts = 0 AND due_at IS NOT NULL;
CREATE INDEX webhooks_disabled_client ON webhooks(client_id, id) WHERE enabled = 0;
CREATE INDEX webhooks_failing_client ON webhooks(client_id, id) WHERE enabled = 1 AND failed_attempts > 0;
CREATE INDEX webhooks_pending_client ON webhooks(client_id, id) WHERE enabled = 1 AND failed_attempts = 0 AND due_at IS NOT NULL;

-- The number of records, kept by triggers on every statement that inserts or deletes one (imports,
-- registrations in open records mode, `records add`, tools): count(*) took 17 ms at 1M records.
-- A trigger, not the store's statements, so that no way of inserting a record can miss it. One row
-- (slot 0) here: SQLite has one writer. PostgreSQL spreads it over slots (see its 008).
CREATE TABLE record_counts (slot INTEGER PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO record_counts (slot, n) SELECT 0, count(*) FROM records;
CREATE TRIGGER records_count_insert AFTER INSERT ON records BEGIN
  UPDATE record_counts SET n = n + 1 WHERE slot = 0;
END;
CREATE TRIGGER records_count_delete AFTER DELETE ON records BEGIN
  UPDATE record_counts SET n = n - 1 WHERE slot = 0;
END;
