-- Hostward schema v11 (both backends): the changes of monitored files the agents' file
-- integrity monitors report (`file_changes` records), one row per change, with the path's
-- state before and after (NULL where there is none: no old state for a create, no new one
-- for a delete) and the writing process as JSON when the kernel named it. Rows go with
-- their server, and after --file-change-retention-days.
CREATE TABLE file_changes (
    id {{id_column}},
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    ts BIGINT NOT NULL,
    path TEXT NOT NULL,
    op TEXT NOT NULL,
    from_path TEXT,
    important BIGINT NOT NULL,
    source TEXT NOT NULL,
    old_kind TEXT,
    old_size BIGINT,
    old_mode BIGINT,
    old_uid BIGINT,
    old_gid BIGINT,
    old_hash TEXT,
    new_kind TEXT,
    new_size BIGINT,
    new_mode BIGINT,
    new_uid BIGINT,
    new_gid BIGINT,
    new_hash TEXT,
    process TEXT,
    received_at BIGINT NOT NULL
);
-- One server's history, newest first.
CREATE INDEX file_changes_server_ts ON file_changes(server_id, ts);
-- The fleet's history newest first, and the retention job's cut. No index on path: the
-- path filter is a substring match, which no B-tree index serves, and each index costs
-- every insert (a scan may report thousands of changes).
CREATE INDEX file_changes_ts ON file_changes(ts);
