-- Hostward schema v2 (SQLite): host inventory. Keep in step with ../postgres/0002_inventory.sql.

-- Per server and kind: which agent state the stored items reflect (the digest the agent's next
-- diff must name as its base), a multi-part record in progress, and the collector's problems.
CREATE TABLE inventory_state (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    digest TEXT NOT NULL DEFAULT '',
    pending_digest TEXT NOT NULL DEFAULT '',
    item_count BIGINT NOT NULL DEFAULT 0,
    issues TEXT NOT NULL DEFAULT '[]',
    collected_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    resync_requested_at BIGINT,
    PRIMARY KEY (server_id, kind)
);

-- Current items. name/value are what fleet views group by (software name/version, ...).
CREATE TABLE inventory_items (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    item_key TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    data TEXT NOT NULL,
    snap TEXT NOT NULL DEFAULT '',
    first_seen BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, kind, item_key)
);
CREATE INDEX inventory_items_fleet ON inventory_items(kind, name, value);

-- Change history: added / removed / changed with old and new item and the changed fields.
CREATE TABLE inventory_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    item_key TEXT NOT NULL,
    name TEXT NOT NULL,
    change TEXT NOT NULL CHECK (change IN ('added', 'removed', 'changed')),
    fields TEXT NOT NULL DEFAULT '',
    old_data TEXT,
    new_data TEXT,
    ts BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX inventory_changes_server ON inventory_changes(server_id, id);
CREATE INDEX inventory_changes_kind ON inventory_changes(kind, id);

-- Inventory schedule and port exceptions per project, pushed to agents with their config.
ALTER TABLE projects ADD COLUMN inventory_policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE projects ADD COLUMN policy_version BIGINT NOT NULL DEFAULT 0;
