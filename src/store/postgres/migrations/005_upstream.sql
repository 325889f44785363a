-- Watching an upstream registry (issue 13): one row per change source that polls, holding its
-- cursor (the start of its next search window, epoch ms) and its leadership: with several
-- processes on one database exactly one polls, the one whose lease (leader_until) is current.
CREATE TABLE upstream_state (
  source          TEXT PRIMARY KEY,
  cursor_at       BIGINT,
  last_success_at BIGINT,
  last_error      TEXT,
  last_error_at   BIGINT,
  leader          TEXT,
  leader_until    BIGINT,
  updated_at      BIGINT NOT NULL
);

-- The poller asks, page by page, which of the iDs it found have an enabled webhook.
CREATE INDEX webhooks_enabled_orcid ON webhooks(orcid) WHERE enabled = 1;
