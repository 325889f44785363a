-- Clients of the ORCID API. Secrets are stored only as scrypt hashes.
CREATE TABLE clients (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  premium     INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);

-- Access tokens, stored only as SHA-256 of a high-entropy random value.
CREATE TABLE tokens (
  token_hash TEXT PRIMARY KEY,
  client_id  TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
  scope      TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX tokens_client ON tokens(client_id);

CREATE TABLE records (
  orcid       TEXT PRIMARY KEY,
  modified_at INTEGER NOT NULL,
  created_at  INTEGER NOT NULL
);

-- One row per webhook holds its whole delivery state: storage stays proportional to webhooks and
-- any number of changes coalesce into the one notification a row can owe.
CREATE TABLE webhooks (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  client_id       TEXT NOT NULL REFERENCES clients(id),
  orcid           TEXT NOT NULL REFERENCES records(orcid),
  url             TEXT NOT NULL,
  host            TEXT NOT NULL,
  created_at      INTEGER NOT NULL,
  enabled         INTEGER NOT NULL DEFAULT 1,
  disabled_reason TEXT,
  disabled_at     INTEGER,
  pending_since   INTEGER,
  due_at          INTEGER,
  change_seq      INTEGER NOT NULL DEFAULT 0,
  notify_seq      INTEGER NOT NULL DEFAULT 0,
  failed_attempts INTEGER NOT NULL DEFAULT 0,
  last_sent_at    INTEGER,
  last_failed_at  INTEGER,
  last_status     TEXT,
  lease_owner     TEXT,
  lease_until     INTEGER,
  lease_reclaimed INTEGER NOT NULL DEFAULT 0,
  UNIQUE (client_id, orcid, url)
);
CREATE INDEX webhooks_orcid ON webhooks(orcid);
-- The claim query scans only rows that owe a notification.
CREATE INDEX webhooks_due ON webhooks(due_at) WHERE enabled = 1 AND due_at IS NOT NULL;

CREATE TABLE attempts (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  webhook_id       INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  notification_id  TEXT NOT NULL,
  at               INTEGER NOT NULL,
  duration_ms      INTEGER NOT NULL,
  status_code      INTEGER,
  error            TEXT,
  response_snippet TEXT,
  -- From the change the notification is about (pending_since) to the answer.
  latency_ms       INTEGER
);
CREATE INDEX attempts_webhook ON attempts(webhook_id, id);
CREATE INDEX attempts_at ON attempts(at);
