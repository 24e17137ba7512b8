-- Hostward schema v20 (both backends): editions and quotas, usage metering, policy groups.
--
-- A server's `edition` is the edition bound to it ('' when none is: protection off, its quota
-- free). Servers that exist already keep everything they had: the full edition, 'wtp', when
-- their protection is on. New servers get their project's `default_edition` when its quota
-- has room. `edition_quotas` caps, per project and edition, the servers with that edition and
-- protection on (no row: no cap). `metered_at` is when a server's protected time was last
-- counted into `edition_usage` (NULL while it is not counted: protection off, no edition, or
-- the agent not online); usage rows keep the server's name and project so a deleted server's
-- time is still reported.
ALTER TABLE projects ADD COLUMN default_edition TEXT NOT NULL DEFAULT 'wtp';
ALTER TABLE servers ADD COLUMN edition TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN metered_at BIGINT;
UPDATE servers SET edition = 'wtp' WHERE protection_wanted = 1;
CREATE TABLE edition_quotas (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    edition TEXT NOT NULL,
    total BIGINT NOT NULL,
    PRIMARY KEY (project_id, edition)
);
CREATE TABLE edition_usage (
    server_id TEXT NOT NULL,
    day TEXT NOT NULL,
    edition TEXT NOT NULL,
    project_id TEXT NOT NULL,
    server_name TEXT NOT NULL,
    seconds BIGINT NOT NULL,
    PRIMARY KEY (server_id, day, edition)
);
CREATE INDEX edition_usage_project_day ON edition_usage (project_id, day);
-- When protected time was last counted, fleet-wide: the replica that moves it counts.
CREATE TABLE meter_clock (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL
);
INSERT INTO meter_clock (id, at) VALUES (1, 0);

-- Policy groups: a project's custom groups. A group's policies are rows of the policies table
-- with scope_kind 'group' and scope_id the group's id; the project's own policies (scope
-- 'project') are its default group. A server with no `policy_group_id` uses the default.
CREATE TABLE policy_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
ALTER TABLE servers ADD COLUMN policy_group_id TEXT REFERENCES policy_groups(id);
