-- Issue 12: SQLite's webhooks_due gains client_id and host so that a claim skips the rows of hosts
-- and clients at their limit from the index. PostgreSQL reads each candidate's heap row anyway (the
-- lease columns, and row visibility on a table updated this often), so the wider index would buy
-- it nothing: nothing to change here; the file keeps both stores' migrations in step.
SELECT 1;
