-- PostgreSQL twin of src/store/sqlite/migrations/002_client_features.sql.
-- Per-client delivery settings (issue 5: signed callbacks, optional JSON payloads). A client with
-- no row here has the defaults: ORCID's empty body and no signature.
--
-- Signing secrets are HMAC keys, so they are kept as they must be used: whoever reads this table
-- can sign as the server, as with every Standard Webhooks sender. They are never logged and are
-- shown once, when created or rotated.
CREATE TABLE client_delivery (
  client_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES clients(id) ON DELETE CASCADE,
  payload_mode    TEXT NOT NULL DEFAULT 'empty' CHECK (payload_mode IN ('empty', 'json')),
  -- `whsec_` + base64 of the key; null: callbacks are not signed.
  signing_secret  TEXT,
  -- The secret replaced by the last rotation: callbacks carry both signatures until previous_until.
  previous_secret TEXT,
  previous_until  BIGINT,
  updated_at      BIGINT NOT NULL
);

-- GET /webhooks pages through one client's webhooks by id; recovery scans them too.
CREATE INDEX webhooks_client ON webhooks(client_id, id);
