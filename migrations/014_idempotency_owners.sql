-- Who runs an Idempotency-Key claim: each service process (each start) has an owner token and
-- keeps a heartbeat row. A running claim is taken over only when its owner is gone (no fresh
-- heartbeat), never because it runs long.
CREATE TABLE idempotency_owners (
  owner    TEXT PRIMARY KEY,
  seen_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT NULL;
