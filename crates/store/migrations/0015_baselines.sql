-- Hostward schema v15 (both backends): configuration baselines. `baseline_results` holds each
-- server's latest result of every check of every policy its agent ran (one row per server,
-- policy and check: a full baseline scan replaces the server's rows, a verification one row),
-- with the handling state people give a failed check (`open` or `ignored`), which survives
-- rescans. `baseline_history` is its handling history; `baseline_rules` are whitelist rules
-- that ignore one check on a project's servers (all, or the listed ones), now and later;
-- `baseline_policies` says per server which policies ran and, for those that did not apply,
-- why. `risk_state` learns when baselines last reported (the risk status is `pending` until
-- they have).
CREATE TABLE baseline_results (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    check_id BIGINT NOT NULL,
    policy_name TEXT NOT NULL,
    title TEXT NOT NULL,
    -- `pass`, `fail` or `not_applicable`
    result TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank BIGINT NOT NULL,
    reason TEXT,
    -- JSON list of lines
    evidence TEXT NOT NULL,
    rationale TEXT NOT NULL,
    remediation TEXT NOT NULL,
    -- JSON object: framework -> ids
    compliance TEXT NOT NULL,
    -- `open` or `ignored`
    state TEXT NOT NULL DEFAULT 'open',
    state_note TEXT NOT NULL DEFAULT '',
    -- when the current run of failures began (NULL while it passes)
    failing_since BIGINT,
    checked_at BIGINT NOT NULL,
    UNIQUE (server_id, policy_id, check_id)
);
CREATE INDEX baseline_results_check ON baseline_results(policy_id, check_id, result);
CREATE INDEX baseline_results_project ON baseline_results(project_id, result, state);

CREATE TABLE baseline_history (
    id {{id_column}},
    finding_id TEXT NOT NULL REFERENCES baseline_results(id) ON DELETE CASCADE,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    ts BIGINT NOT NULL
);
CREATE INDEX baseline_history_finding ON baseline_history(finding_id, id);

CREATE TABLE baseline_rules (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    policy_id TEXT NOT NULL,
    check_id BIGINT NOT NULL,
    -- JSON list of server ids; empty = every server of the project
    server_ids TEXT NOT NULL DEFAULT '[]',
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE baseline_policies (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    policy_id TEXT NOT NULL,
    name TEXT NOT NULL,
    applicable BIGINT NOT NULL,
    reason TEXT,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, policy_id)
);

ALTER TABLE risk_state ADD COLUMN baseline_scanned_at BIGINT;
ALTER TABLE risk_state ADD COLUMN baseline_summary TEXT NOT NULL DEFAULT '{}';
