-- Rate limits decided in memory and reconciled in batches (src/http/rate-reconciler.ts): each
-- instance adds what it took to these rows every round instead of taking a token per request.
-- `tokens` may now be below zero (down to minus one burst): the debt of instances that spent
-- the same bucket between two rounds, refilled like any level. `allowed` is no longer written;
-- it keeps a default, and rate_limit_take stays, so that instances of the previous version
-- share the same rows during a rolling deploy.
ALTER TABLE rate_limit_buckets ALTER COLUMN allowed SET DEFAULT true;
