-- Issue 12: PostgreSQL's webhooks_due gains id so that a claim reads ORDER BY due_at, id from it.
-- SQLite's index already ends with the rowid (= id): nothing to change here; the file keeps both
-- stores' migrations in step.
SELECT 1;
