-- Webhooks get a random public id (issue 11): the ids shown to clients, the dashboard and the CLI
-- were the table's sequential integers, from which another client could count registrations. The
-- integer stays the internal key. `wh_` + 32 hex digits (128 random bits).
ALTER TABLE webhooks ADD COLUMN public_id TEXT;
UPDATE webhooks SET public_id = 'wh_' || lower(hex(randomblob(16)));
CREATE UNIQUE INDEX webhooks_public_id ON webhooks(public_id);
-- The store sets it on insert; rows inserted by other means (tools, benchmarks) get one here.
CREATE TRIGGER webhooks_public_id_default AFTER INSERT ON webhooks WHEN NEW.public_id IS NULL
BEGIN
  UPDATE webhooks SET public_id = 'wh_' || lower(hex(randomblob(16))) WHERE id = NEW.id;
END;
