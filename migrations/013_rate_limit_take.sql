-- A bucket's level once refilled, by the database clock: capped at burst, never below what is
-- left (a clock step back adds nothing). The pruner uses it too: a full bucket is the same as
-- no row, so full buckets are deleted.
CREATE FUNCTION rate_limit_level(tokens DOUBLE PRECISION, updated_at TIMESTAMPTZ, rate DOUBLE PRECISION, burst DOUBLE PRECISION)
RETURNS DOUBLE PRECISION LANGUAGE sql VOLATILE AS $$
  SELECT least(burst, tokens + greatest(0, extract(epoch FROM clock_timestamp() - updated_at))::double precision * rate)
$$;

-- One request's take, all or nothing: a token is taken from every bucket of the request if
-- each has one after refilling, else from none (a user refused by their own bucket spends
-- nothing of the channel's). Called as one statement; inside, each step sees the previous one's
-- rows (and those of concurrent requests that created a bucket meanwhile), so no token is
-- handed out twice. `allowed` records whether the last request was admitted.
CREATE FUNCTION rate_limit_take(bucket_keys TEXT[], rates DOUBLE PRECISION[], bursts DOUBLE PRECISION[])
RETURNS TABLE (bucket_key TEXT, tokens_left DOUBLE PRECISION, admitted BOOLEAN)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  every_bucket_has_a_token BOOLEAN;
BEGIN
  -- A new bucket starts full; this waits out a concurrent request creating the same one.
  INSERT INTO rate_limit_buckets (key, tokens, rate, burst, allowed, updated_at)
  SELECT w.k, w.burst, w.rate, w.burst, true, clock_timestamp()
    FROM unnest(bucket_keys, rates, bursts) AS w(k, rate, burst)
   ORDER BY w.k
  ON CONFLICT DO NOTHING;
  -- Locked in key order, so two requests never wait on each other in a cycle.
  PERFORM 1 FROM rate_limit_buckets b WHERE b.key = ANY(bucket_keys) ORDER BY b.key FOR UPDATE;
  SELECT coalesce(bool_and(rate_limit_level(b.tokens, b.updated_at, w.rate, w.burst) >= 1), true)
    INTO every_bucket_has_a_token
    FROM rate_limit_buckets b JOIN unnest(bucket_keys, rates, bursts) AS w(k, rate, burst) ON w.k = b.key;
  RETURN QUERY
  UPDATE rate_limit_buckets AS b SET
      tokens = rate_limit_level(b.tokens, b.updated_at, w.rate, w.burst) - CASE WHEN every_bucket_has_a_token THEN 1 ELSE 0 END,
      allowed = every_bucket_has_a_token,
      rate = w.rate,
      burst = w.burst,
      updated_at = clock_timestamp()
    FROM unnest(bucket_keys, rates, bursts) AS w(k, rate, burst)
   WHERE b.key = w.k
  RETURNING b.key, b.tokens, b.allowed;
END
$$;
