-- A thread's replies by seq, as the thread listing pages them: a page of a thread is read
-- without walking the rest of the channel (messages_channel_seq_live_idx) or sorting the
-- whole thread (messages_thread_idx).
CREATE INDEX messages_thread_seq_live_idx ON messages(thread_id, seq)
  WHERE thread_id IS NOT NULL AND deleted_at IS NULL AND delivery_state <> 'failed';
