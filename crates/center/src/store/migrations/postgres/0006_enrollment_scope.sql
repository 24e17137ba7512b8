-- Hostward schema v6 (PostgreSQL): install ids scoped by project, enrollment token use limits
-- and one-time re-install tokens. Keep in step with ../sqlite/0006_enrollment_scope.sql.

-- An install id names a server within its project only: a token of another project must not
-- reach, squat or fail an install id of this one. (SQLite keeps an emptied
-- install_id_unscoped column where PostgreSQL drops the constraint; no query reads it.)
ALTER TABLE servers DROP CONSTRAINT servers_install_id_key;
CREATE UNIQUE INDEX servers_project_install_id ON servers(project_id, install_id);

-- NULL: no limit on how many servers the token enrolls.
ALTER TABLE enrollment_tokens ADD COLUMN max_uses BIGINT;
-- Set on a re-install token: an admin's one-time grant to bind a new agent to this enrolled
-- or revoked server (ordinary tokens never rebind a server that has or had an agent).
ALTER TABLE enrollment_tokens ADD COLUMN server_id TEXT REFERENCES servers(id) ON DELETE CASCADE;
