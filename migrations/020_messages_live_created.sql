-- Live messages newest first across every channel, as the search across channels ranks the
-- newest matches: a common word is then read walking this index down until enough matches
-- are found, not by reading and sorting every match (tens of thousands on a big index).
-- A rare word is still read through messages_search_idx; the planner picks.
CREATE INDEX messages_live_created_idx ON messages(created_at DESC, id DESC)
  WHERE deleted_at IS NULL AND delivery_state <> 'failed';
