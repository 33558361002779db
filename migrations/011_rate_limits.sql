-- Token buckets shared by every instance: one row per key (a caller's writes, a channel's
-- writes, a caller's reads). A request refills and takes a token in one upsert; rate and
-- burst travel with the request so a configuration change applies at once.
CREATE TABLE rate_limit_buckets (
  key         TEXT PRIMARY KEY,
  tokens      DOUBLE PRECISION NOT NULL,
  rate        DOUBLE PRECISION NOT NULL,
  burst       DOUBLE PRECISION NOT NULL,
  allowed     BOOLEAN NOT NULL,
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX rate_limit_buckets_updated_idx ON rate_limit_buckets(updated_at);
