-- Hostward schema v17 (both backends): alarm notifications. A project's channels (email or
-- webhook) with their settings (JSON, no secret), the secret sealed by the center (SMTP
-- password, webhook signing secret; never stored in the clear), filters and masking rules
-- (JSON), and what each receives: real-time alarms, the daily summary at `summary_at` (HH:MM),
-- reports. The outbox holds one row per (channel, notification): queued for a new alarm in the
-- records transaction that stores it, for a day's summary once (`dedup_key` is unique per
-- channel), retried with back-off, leased by one replica at a time while it is sent.
CREATE TABLE notification_channels (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    settings TEXT NOT NULL,
    secret_sealed TEXT,
    filters TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    realtime BIGINT NOT NULL DEFAULT 1,
    summary BIGINT NOT NULL DEFAULT 1,
    summary_at TEXT NOT NULL DEFAULT '10:00',
    reports BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX notification_channels_project ON notification_channels (project_id, enabled);
CREATE TABLE notification_outbox (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    group_key TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    sent_at BIGINT,
    UNIQUE (channel_id, dedup_key)
);
CREATE INDEX notification_outbox_due ON notification_outbox (state, next_attempt_at);
CREATE INDEX notification_outbox_project ON notification_outbox (project_id, state, created_at);
CREATE INDEX notification_outbox_group ON notification_outbox (channel_id, group_key, state);
CREATE INDEX notification_outbox_lease ON notification_outbox (lease_owner);
