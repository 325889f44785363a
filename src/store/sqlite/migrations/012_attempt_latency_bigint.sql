-- PostgreSQL's attempts.latency_ms becomes BIGINT (it overflowed beyond 24.8 days). SQLite's
-- INTEGER already holds 64 bits: nothing to change; the file keeps both stores' migrations in step.
SELECT 1;
