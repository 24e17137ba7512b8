-- Hostward schema v4 (SQLite): alarms and firewall blocks. Keep in step with ../postgres/0004_alarms.sql.

-- One row per (server, type, key) while it repeats: repeats within the aggregation window add
-- to `count` and move `last_seen`; the evidence is the latest.
CREATE TABLE alarms (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    alarm_type TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank BIGINT NOT NULL,
    tactic TEXT NOT NULL,
    technique TEXT NOT NULL,
    agg_key TEXT NOT NULL,
    title TEXT NOT NULL,
    source_ip TEXT,
    evidence TEXT NOT NULL,
    count BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    -- unhandled, handled, ignored
    state TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL
);
CREATE INDEX alarms_repeat ON alarms(server_id, alarm_type, agg_key, state);
CREATE INDEX alarms_fleet ON alarms(project_id, last_seen);

CREATE TABLE alarm_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id TEXT NOT NULL REFERENCES alarms(id) ON DELETE CASCADE,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    ts BIGINT NOT NULL
);
CREATE INDEX alarm_history_alarm ON alarm_history(alarm_id, id);

-- Alarms of a type from an address that people decided are fine: stored as `ignored`.
CREATE TABLE alarm_whitelist (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    alarm_type TEXT,
    source_ip TEXT,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The firewall blocks of each agent, as its block records report them.
CREATE TABLE blocked_ips (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    addr TEXT NOT NULL,
    reason TEXT NOT NULL,
    service TEXT,
    blocked_at BIGINT NOT NULL,
    expires_at BIGINT,
    active BIGINT NOT NULL,
    unblocked_at BIGINT,
    PRIMARY KEY (server_id, addr)
);

-- Brute-force thresholds, whitelist and login monitoring per project, pushed to agents.
ALTER TABLE projects ADD COLUMN bruteforce_policy TEXT NOT NULL DEFAULT '{}';
