-- Issue 12 (cause 4): the overview, /metrics and the state filters read every webhook (210-350 ms
-- at 1M). The rare states get partial indexes, with exactly the conditions of
-- src/domain/webhook-state.ts (STATE_SQL): their counts read only the rows in that state (index
-- only), and their lists walk them in id order, all clients' (admin) or one client's. The number of
-- webhooks is the sum of clients.webhook_count (007); "enabled, nothing owed" is the rest. The
-- columns they cover (enabled, failed_attempts, due_at) already change together with due_at, which
-- webhooks_due indexes, so these indexes cost no HOT update that was possible before (a claim
-- changes only lease columns, which no index covers).
CREATE INDEX webhooks_disabled ON webhooks(id) WHERE enabled = 0;
CREATE INDEX webhooks_failing ON webhooks(id, failed_attempts) WHERE enabled = 1 AND failed_attempts > 0;
CREATE INDEX webhooks_pending ON webhooks(id, failed_attempts, due_at) WHERE enabled = 1 AND failed_attempts = 0 AND due_at IS NOT NULL;
CREATE INDEX webhooks_disabled_client ON webhooks(client_id, id) WHERE enabled = 0;
CREATE INDEX webhooks_failing_client ON webhooks(client_id, id) WHERE enabled = 1 AND failed_attempts > 0;
CREATE INDEX webhooks_pending_client ON webhooks(client_id, id) WHERE enabled = 1 AND failed_attempts = 0 AND due_at IS NOT NULL;

-- The number of records, kept by statement triggers on every statement that inserts or deletes
-- some (imports, registrations in open records mode, `records add`, tools): count(*) reads the
-- whole table (17 ms at 1M in SQLite). A trigger, not the store's statements, so that no way of
-- inserting a record can miss it. The total is spread over 16 slots chosen by the session's pid,
-- so that concurrent transactions inserting records do not queue on one row lock until they
-- commit; the count is their sum. The trigger is created before the initial count, in this
-- transaction: its lock on records makes concurrent inserts wait for the commit, then count.
CREATE TABLE record_counts (slot INTEGER PRIMARY KEY, n BIGINT NOT NULL);
CREATE FUNCTION records_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k BIGINT;
BEGIN
  SELECT count(*) INTO k FROM inserted;
  IF k > 0 THEN
    INSERT INTO record_counts (slot, n) VALUES (pg_backend_pid() % 16, k)
    ON CONFLICT (slot) DO UPDATE SET n = record_counts.n + excluded.n;
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION records_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k BIGINT;
BEGIN
  SELECT count(*) INTO k FROM deleted;
  IF k > 0 THEN
    INSERT INTO record_counts (slot, n) VALUES (pg_backend_pid() % 16, -k)
    ON CONFLICT (slot) DO UPDATE SET n = record_counts.n + excluded.n;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER records_count_insert AFTER INSERT ON records REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION records_count_insert();
CREATE TRIGGER records_count_delete AFTER DELETE ON records REFERENCING OLD TABLE AS deleted
  FOR EACH STATEMENT EXECUTE FUNCTION records_count_delete();
INSERT INTO record_counts (slot, n) SELECT 0, count(*) FROM records
  ON CONFLICT (slot) DO UPDATE SET n = record_counts.n + excluded.n;
