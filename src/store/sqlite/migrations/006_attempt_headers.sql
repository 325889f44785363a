-- The request and response headers of each callback attempt (issue 14), as JSON objects of
-- lower-cased names to values: bounded (40 headers, 256 characters a value, 4 KB a side) and with
-- secrets such as webhook-signature, authorization and set-cookie redacted before they are stored
-- (src/domain/attempt-headers.ts). NULL for attempts made before this migration, and for the
-- response of an attempt that got no answer.
ALTER TABLE attempts ADD COLUMN request_headers TEXT;
ALTER TABLE attempts ADD COLUMN response_headers TEXT;
