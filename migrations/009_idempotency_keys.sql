-- Idempotency-Key on POSTs that create something: the first request's result is kept for at
-- least 24 hours, so a retry with the same key and body gets it back and creates nothing.
CREATE TABLE idempotency_keys (
  scope         TEXT PRIMARY KEY,
  request_hash  TEXT NOT NULL,
  state         TEXT NOT NULL DEFAULT 'running',
  status        INTEGER NULL,
  response      JSONB NULL,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT idempotency_keys_state_check CHECK (state IN ('running', 'done'))
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys(created_at);
