-- Webhooks get a random public id (issue 11): the ids shown to clients, the dashboard and the CLI
-- were the table's sequential integers, from which another client could count registrations. The
-- integer stays the internal key. `wh_` + 32 hex digits (122 random bits of a v4 UUID); a volatile
-- default gives every existing row its own.
ALTER TABLE webhooks ADD COLUMN public_id TEXT NOT NULL DEFAULT ('wh_' || replace(gen_random_uuid()::text, '-', ''));
CREATE UNIQUE INDEX webhooks_public_id ON webhooks(public_id);
