-- Hostward schema v12 (both backends): web tamper protection's unlocks from the console, at
-- most one per server: protection on that server is lifted until `until` (Unix seconds), as
-- asked by `set_by` at `set_at`. "Lock now" deletes the row; a row whose `until` has passed
-- is locked too (it stays until the next unlock or lock replaces it). Rows go with their
-- server. The project's tamper policy needs no table: it is a row of `policies`.
CREATE TABLE tamper_unlocks (
    server_id TEXT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    until BIGINT NOT NULL,
    set_by TEXT NOT NULL,
    set_at BIGINT NOT NULL
);
