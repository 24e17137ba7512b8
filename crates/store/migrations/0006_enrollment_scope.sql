-- Hostward schema v6 (both backends): install ids scoped by project, enrollment token use
-- limits and one-time re-install tokens.

-- An install id names a server within its project only: a token of another project must not
-- reach, squat or fail an install id of this one. SQLite cannot drop the column's UNIQUE
-- constraint in place, so on both backends the old column keeps the name install_id_unscoped,
-- emptied (NULLs never collide; no query reads it), and a new install_id column takes the
-- values under a per-project index.
ALTER TABLE servers RENAME COLUMN install_id TO install_id_unscoped;
ALTER TABLE servers ADD COLUMN install_id TEXT;
UPDATE servers SET install_id = install_id_unscoped, install_id_unscoped = NULL;
CREATE UNIQUE INDEX servers_project_install_id ON servers(project_id, install_id);

-- NULL: no limit on how many servers the token enrolls.
ALTER TABLE enrollment_tokens ADD COLUMN max_uses BIGINT;
-- Set on a re-install token: an admin's one-time grant to bind a new agent to this enrolled
-- or revoked server (ordinary tokens never rebind a server that has or had an agent).
ALTER TABLE enrollment_tokens ADD COLUMN server_id TEXT REFERENCES servers(id) ON DELETE CASCADE;
