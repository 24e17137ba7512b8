-- Hostward schema v1 (SQLite). Keep in step with ../postgres/0001_init.sql: same tables, columns
-- and meaning. Times are Unix seconds (BIGINT), flags 0/1, JSON as TEXT: the sqlx Any driver
-- maps these the same way on both backends.

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_superadmin BIGINT NOT NULL DEFAULT 0,
    must_change_password BIGINT NOT NULL DEFAULT 0,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    PRIMARY KEY (user_id, project_id)
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    allowed_cidrs TEXT NOT NULL DEFAULT '',
    expires_at BIGINT,
    revoked_at BIGINT,
    uses BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    hostname TEXT NOT NULL DEFAULT '',
    ip_addresses TEXT NOT NULL DEFAULT '',
    facts_json TEXT NOT NULL DEFAULT '{}',
    agent_id TEXT UNIQUE,
    agent_version TEXT NOT NULL DEFAULT '',
    cert_serial TEXT,
    cert_not_after BIGINT,
    install_id TEXT UNIQUE,
    agent_status TEXT NOT NULL,
    agent_reason TEXT NOT NULL DEFAULT '',
    agent_changed_at BIGINT NOT NULL,
    protection_wanted BIGINT NOT NULL DEFAULT 1,
    protection_status TEXT NOT NULL,
    protection_reason TEXT NOT NULL DEFAULT '',
    protection_changed_at BIGINT NOT NULL,
    risk_status TEXT NOT NULL DEFAULT 'pending',
    risk_counts TEXT NOT NULL DEFAULT '{}',
    risk_changed_at BIGINT NOT NULL,
    config_version BIGINT NOT NULL DEFAULT 1,
    last_seen_at BIGINT,
    last_seq BIGINT NOT NULL DEFAULT 0,
    heartbeat_json TEXT NOT NULL DEFAULT '{}',
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX servers_project ON servers(project_id);
CREATE INDEX servers_agent_status ON servers(agent_status);

CREATE TABLE status_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    ts BIGINT NOT NULL,
    dimension TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX status_history_server ON status_history(server_id, id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    UNIQUE (server_id, seq)
);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    output TEXT NOT NULL DEFAULT 'null',
    created_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX tasks_server_state ON tasks(server_id, state);
CREATE INDEX tasks_state ON tasks(state);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts BIGINT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    username TEXT NOT NULL DEFAULT '',
    project_id TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    source_ip TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_project ON audit_log(project_id, id);
