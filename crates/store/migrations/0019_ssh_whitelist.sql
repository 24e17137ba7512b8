-- Hostward schema v19 (both backends): each server's SSH login whitelist, at most one row per
-- server. While `enabled` is set, the agent's firewall lets only `addrs` (canonical addresses
-- or prefixes separated by single spaces, at most 50) open new connections to sshd. A server
-- without a row has no whitelist. Rows go with their server.
CREATE TABLE ssh_whitelists (
    server_id TEXT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    enabled BIGINT NOT NULL,
    addrs TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at BIGINT NOT NULL
);
