-- Hostward schema v10 (both backends): files the agents' quarantines hold, as the agents
-- report them (`isolated_file` records). One row per server and quarantine entry; its state
-- follows the entry: isolated, restored, deleted.
CREATE TABLE isolated_files (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    file_id TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    gid BIGINT NOT NULL,
    mode BIGINT NOT NULL,
    reason TEXT NOT NULL,
    killed TEXT NOT NULL,
    state TEXT NOT NULL,
    isolated_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, file_id)
);
CREATE INDEX isolated_files_state ON isolated_files(state, updated_at);
