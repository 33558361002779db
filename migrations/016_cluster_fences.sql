-- Cluster mode (README "Running several instances"): who may write a channel's rows.
--
-- Each resource ('channel:<id>', 'leader:sync', 'leader:outbox') has one row naming the process
-- (its incarnation: instance id plus a per-start nonce) that last claimed it. A claim is an
-- upsert that bumps the epoch; it waits for the previous holder's in-flight writes, which hold
-- the row FOR SHARE. Every write to a fenced table by a cluster process is checked in the same
-- statement by a trigger: a process that lost the resource (paused, cut off from NATS) has its
-- write refused with SQLSTATE DA001, and the statement changes nothing.
--
-- Only connections that say who they are (the daarion.instance setting, given by cluster mode
-- at connect) are checked: a single instance, the embedded database and the tools run as before.
-- A resource with no row has never had a cluster owner (a channel being created): not fenced.
CREATE TABLE cluster_fences (
    resource   TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION cluster_fence_check(wanted TEXT) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    holder TEXT;
BEGIN
    SELECT owner INTO holder FROM cluster_fences WHERE resource = wanted FOR SHARE;
    IF holder IS NOT NULL AND holder <> current_setting('daarion.instance', true) THEN
        RAISE EXCEPTION 'this instance no longer owns %', wanted USING ERRCODE = 'DA001';
    END IF;
END $$;

-- Rows that carry their channel.
CREATE FUNCTION cluster_fence_channel_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM cluster_fence_check('channel:' || OLD.channel_id);
        RETURN OLD;
    END IF;
    PERFORM cluster_fence_check('channel:' || NEW.channel_id);
    RETURN NEW;
END $$;

-- Rows of a message (reactions, edits): fenced by the message's channel.
CREATE FUNCTION cluster_fence_message_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel TEXT;
BEGIN
    SELECT m.channel_id INTO channel FROM messages m
     WHERE m.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.message_id ELSE NEW.message_id END;
    IF channel IS NOT NULL THEN
        PERFORM cluster_fence_check('channel:' || channel);
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE FUNCTION cluster_fence_channel_settings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cluster_fence_check('channel:' || NEW.id);
    RETURN NEW;
END $$;

CREATE FUNCTION cluster_fence_sync_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cluster_fence_check('leader:sync');
    RETURN NEW;
END $$;

CREATE FUNCTION cluster_fence_event_flush() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cluster_fence_check('leader:outbox');
    RETURN NULL;
END $$;

CREATE TRIGGER messages_fence BEFORE INSERT OR UPDATE OR DELETE ON messages
    FOR EACH ROW WHEN (coalesce(current_setting('daarion.instance', true), '') <> '')
    EXECUTE FUNCTION cluster_fence_channel_row();
CREATE TRIGGER channel_members_fence BEFORE INSERT OR UPDATE OR DELETE ON channel_members
    FOR EACH ROW WHEN (coalesce(current_setting('daarion.instance', true), '') <> '')
    EXECUTE FUNCTION cluster_fence_channel_row();
CREATE TRIGGER channel_pins_fence BEFORE INSERT OR UPDATE OR DELETE ON channel_pins
    FOR EACH ROW WHEN (coalesce(current_setting('daarion.instance', true), '') <> '')
    EXECUTE FUNCTION cluster_fence_channel_row();
CREATE TRIGGER channel_read_state_fence BEFORE INSERT OR UPDATE OR DELETE ON channel_read_state
    FOR EACH ROW WHEN (coalesce(current_setting('daarion.instance', true), '') <> '')
    EXECUTE FUNCTION cluster_fence_channel_row();
CREATE TRIGGER channel_events_fence BEFORE INSERT OR UPDATE OR DELETE ON channel_events
    FOR EACH ROW WHEN (coalesce(current_setting('daarion.instance', true), '') <> '')
    EXECUTE FUNCTION cluster_fence_channel_row();
CREATE TRIGGER message_reactions_fence BEFORE INSERT OR UPDATE OR DELETE ON message_reactions
    FOR EACH ROW WHEN (coalesce(current_setting('daarion.instance', true), '') <> '')
    EXECUTE FUNCTION cluster_fence_message_row();
CREATE TRIGGER message_edits_fence BEFORE INSERT OR UPDATE OR DELETE ON message_edits
    FOR EACH ROW WHEN (coalesce(current_setting('daarion.instance', true), '') <> '')
    EXECUTE FUNCTION cluster_fence_message_row();
CREATE TRIGGER channels_fence BEFORE UPDATE ON channels
    FOR EACH ROW WHEN (coalesce(current_setting('daarion.instance', true), '') <> '')
    EXECUTE FUNCTION cluster_fence_channel_settings();
CREATE TRIGGER matrix_sync_state_fence BEFORE INSERT OR UPDATE ON matrix_sync_state
    FOR EACH ROW WHEN (coalesce(current_setting('daarion.instance', true), '') <> '')
    EXECUTE FUNCTION cluster_fence_sync_position();
CREATE TRIGGER event_outbox_flush_fence BEFORE DELETE ON event_outbox
    FOR EACH STATEMENT WHEN (coalesce(current_setting('daarion.instance', true), '') <> '')
    EXECUTE FUNCTION cluster_fence_event_flush();
