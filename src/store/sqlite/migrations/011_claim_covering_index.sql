-- Issue 12: a claim walks webhooks_due in (due_at, id) order and leaves out the rows of hosts and
-- clients at their limit. With client_id and host in the index, it tells those rows apart from the
-- index entry instead of reading each table row: with one client at its cap or 31 of 32 hosts full,
-- a walk past 20,000 owed rows took 7.1-7.5 ms and now 4.0-4.4 ms; a claim for one free host's
-- slots, 1.0 -> 0.6 ms. A claim changes only the lease columns, none of them in this index.
DROP INDEX webhooks_due;
CREATE INDEX webhooks_due ON webhooks(due_at, id, client_id, host) WHERE enabled = 1 AND due_at IS NOT NULL;
