-- Hostward schema v9 (both backends): exactly-once delivery across lost outboxes and
-- unstorable records, and the replicas agents fail over among.

-- The agent outbox the stored records came from (its random id; '' before the agent sent
-- one, and after a re-enrollment), and when an agent last connected with a different one.
ALTER TABLE servers ADD COLUMN outbox_id TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN outbox_replaced_at BIGINT;

-- Records that reached the center but cannot be stored by their capability (a constraint
-- they break, a server state they do not fit). Kept whole with the error rather than lost,
-- and acked so they cannot block the agent's later records.
CREATE TABLE rejected_records (
    id {{id_column}},
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    error TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX rejected_records_server ON rejected_records(server_id, seq);

-- Live center replicas and the gateway URL each advertises to agents.
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    gateway_url TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);
