-- Events bound for NATS wait here until JetStream acknowledges them, so a broker outage (or a
-- restart during one) loses none. Each carries its event id, published as Nats-Msg-Id, so a
-- republish after a lost acknowledgement is dropped by JetStream's duplicate window.
CREATE TABLE event_outbox (
  position    BIGSERIAL PRIMARY KEY,
  event_id    TEXT NOT NULL UNIQUE,
  subject     TEXT NOT NULL,
  payload     JSONB NOT NULL,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
