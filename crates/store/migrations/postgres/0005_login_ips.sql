-- Hostward schema v5 (PostgreSQL): each server's usual login addresses. Keep in step with ../sqlite/0005_login_ips.sql.

-- At most 20 per server (the API and the record path enforce it). `learned` entries come from
-- the agent's login_ip records (added_by NULL); `manual` ones from a person (added_by the user).
CREATE TABLE server_login_ips (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    -- Canonical text of an address or prefix (hostward_proto::bruteforce::Net).
    addr TEXT NOT NULL,
    -- learned, manual
    origin TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    added_by TEXT,
    PRIMARY KEY (server_id, addr)
);

-- Whether the server's agent still learns usual login addresses (on for a new server).
ALTER TABLE servers ADD COLUMN login_ips_learning BIGINT NOT NULL DEFAULT 1;
