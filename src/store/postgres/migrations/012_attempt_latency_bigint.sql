-- A callback's latency (from the change to the attempt) overflowed INTEGER beyond 24.8 days: a
-- webhook re-enabled with a notification owed for longer, or a change dated in the future, made
-- every completion batch of the worker fail ("integer out of range"), so no attempt was recorded
-- and callbacks were sent again. Milliseconds as BIGINT, as every other time in the schema. (This
-- rewrites the attempts table once, under a lock, while the migration runs.)
ALTER TABLE attempts ALTER COLUMN latency_ms TYPE BIGINT;
