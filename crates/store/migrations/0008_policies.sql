-- Hostward schema v8 (both backends): one policies table keyed by scope and capability, in
-- place of one JSON column per capability on projects.

-- A scope is what a policy applies to: today a project (scope_kind 'project', scope_id its
-- id); policy groups and editions key on the same table. `body` is the capability's typed
-- policy as JSON, validated by hostward-proto before every write; `version` counts that
-- policy's changes. projects.policy_version still counts every change of a project's
-- policies, which is what re-sends agents their config.
CREATE TABLE policies (
    scope_kind TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    capability TEXT NOT NULL,
    body TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (scope_kind, scope_id, capability)
);

INSERT INTO policies (scope_kind, scope_id, capability, body, version, updated_at)
    SELECT 'project', id, 'inventory', inventory_policy, 1, 0 FROM projects WHERE inventory_policy <> '{}';
INSERT INTO policies (scope_kind, scope_id, capability, body, version, updated_at)
    SELECT 'project', id, 'risk', risk_policy, 1, 0 FROM projects WHERE risk_policy <> '{}';
INSERT INTO policies (scope_kind, scope_id, capability, body, version, updated_at)
    SELECT 'project', id, 'bruteforce', bruteforce_policy, 1, 0 FROM projects WHERE bruteforce_policy <> '{}';

ALTER TABLE projects DROP COLUMN inventory_policy;
ALTER TABLE projects DROP COLUMN risk_policy;
ALTER TABLE projects DROP COLUMN bruteforce_policy;
