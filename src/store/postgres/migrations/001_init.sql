-- PostgreSQL twin of src/store/sqlite/migrations/001_init.sql: same tables, columns and meaning.
-- Times are epoch milliseconds (BIGINT); flags are SMALLINT 0/1 so that the state filters are the
-- same SQL text in both dialects (`enabled = 1`). Identifiers that are ordered or paginated use
-- COLLATE "C" so that ORDER BY and `>` cursors sort bytewise, as SQLite does.

-- Clients of the ORCID API. Secrets are stored only as scrypt hashes.
CREATE TABLE clients (
  id          TEXT COLLATE "C" PRIMARY KEY,
  name        TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  premium     SMALLINT NOT NULL DEFAULT 0 CHECK (premium IN (0, 1)),
  created_at  BIGINT NOT NULL,
  revoked_at  BIGINT
);

-- Access tokens, stored only as SHA-256 of a high-entropy random value.
CREATE TABLE tokens (
  token_hash TEXT PRIMARY KEY,
  client_id  TEXT COLLATE "C" NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
  scope      TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX tokens_client ON tokens(client_id);

CREATE TABLE records (
  orcid       TEXT COLLATE "C" PRIMARY KEY,
  modified_at BIGINT NOT NULL,
  created_at  BIGINT NOT NULL
);

-- One row per webhook holds its whole delivery state: storage stays proportional to webhooks and
-- any number of changes coalesce into the one notification a row can owe.
CREATE TABLE webhooks (
  id              BIGSERIAL PRIMARY KEY,
  client_id       TEXT COLLATE "C" NOT NULL REFERENCES clients(id),
  orcid           TEXT COLLATE "C" NOT NULL REFERENCES records(orcid),
  url             TEXT NOT NULL,
  host            TEXT NOT NULL,
  created_at      BIGINT NOT NULL,
  enabled         SMALLINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  disabled_reason TEXT,
  disabled_at     BIGINT,
  pending_since   BIGINT,
  due_at          BIGINT,
  change_seq      BIGINT NOT NULL DEFAULT 0,
  notify_seq      BIGINT NOT NULL DEFAULT 0,
  failed_attempts INTEGER NOT NULL DEFAULT 0,
  last_sent_at    BIGINT,
  last_failed_at  BIGINT,
  last_status     TEXT,
  lease_owner     TEXT,
  lease_until     BIGINT,
  -- Kept for parity with the SQLite schema; the PostgreSQL claim computes "reclaimed" itself.
  lease_reclaimed SMALLINT NOT NULL DEFAULT 0,
  UNIQUE (client_id, orcid, url)
);
CREATE INDEX webhooks_orcid ON webhooks(orcid);
-- The claim query scans only rows that owe a notification.
CREATE INDEX webhooks_due ON webhooks(due_at) WHERE enabled = 1 AND due_at IS NOT NULL;

CREATE TABLE attempts (
  id               BIGSERIAL PRIMARY KEY,
  webhook_id       BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  notification_id  TEXT NOT NULL,
  at               BIGINT NOT NULL,
  duration_ms      INTEGER NOT NULL,
  status_code      INTEGER,
  error            TEXT,
  response_snippet TEXT,
  -- From the change the notification is about (pending_since) to the answer.
  latency_ms       INTEGER
);
CREATE INDEX attempts_webhook ON attempts(webhook_id, id);
CREATE INDEX attempts_at ON attempts(at);
