-- Issue 12: a claim takes the earliest due rows ORDER BY due_at, id (id breaks the ties of a bulk
-- change). webhooks_due indexed due_at alone, so PostgreSQL could not read that order from it: each
-- claim read and sorted every owed row (20,000 for a bulk change of 20,000: 10-17 ms), and the
-- plan's cost put it past jit_above_cost, adding ~60 ms of JIT compilation to every claim. With id
-- in the index the claim walks it in order and stops after its scan window (~1.8 ms, no JIT). The
-- other readers of webhooks_due (the next due time, the backlog) are served as before.
DROP INDEX webhooks_due;
CREATE INDEX webhooks_due ON webhooks(due_at, id) WHERE enabled = 1 AND due_at IS NOT NULL;
