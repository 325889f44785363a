-- Issue 12: the per-client cap without a count(*) per registration (43 ms at 1M webhooks). The
-- statement that takes a place also checks the cap: UPDATE ... SET webhook_count = webhook_count + 1
-- WHERE id = ? AND webhook_count < cap.
ALTER TABLE clients ADD COLUMN webhook_count INTEGER NOT NULL DEFAULT 0;
UPDATE clients SET webhook_count = (SELECT count(*) FROM webhooks WHERE webhooks.client_id = clients.id);
