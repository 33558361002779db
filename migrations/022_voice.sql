-- Voice messages (issue 16, item 2). An m.audio marked as voice (org.matrix.msc3245.voice),
-- from the service's uploads and from Element alike, keeps its duration and waveform in the
-- index (content_type 'voice'), so message views and frames show them without the event.
-- Both are null for every other message; the waveform is MSC3246's: integers 0..1024.
ALTER TABLE messages ADD COLUMN voice_duration_ms INTEGER;
ALTER TABLE messages ADD COLUMN voice_waveform INTEGER[];
