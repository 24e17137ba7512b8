-- Hostward schema v3 (SQLite): risk prevention. Keep in step with ../postgres/0003_risk.sql.

-- The vulnerability database: normalised advisories (hostward-vulndb JSON), merged by id.
-- Every import is a row of vulndb_imports; the highest id is the database version, and every
-- replica re-matches all servers when it moves.
CREATE TABLE vuln_advisories (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    import_id BIGINT NOT NULL
);

CREATE TABLE vulndb_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    advisories BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    -- JSON list of {source, reason}, at most 1000 entries
    skipped_detail TEXT NOT NULL,
    replaced BIGINT NOT NULL DEFAULT 0,
    imported_by TEXT NOT NULL,
    imported_at BIGINT NOT NULL
);

-- One row per (server, CVE, binary package). `present` is 1 while the latest match finds it;
-- handling state survives re-matching.
CREATE TABLE vuln_findings (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    cve TEXT NOT NULL,
    package TEXT NOT NULL,
    advisory_id TEXT NOT NULL,
    source_package TEXT,
    manager TEXT NOT NULL,
    installed_version TEXT NOT NULL,
    fixed_version TEXT,
    -- CVSS base score times ten (integer: the Any driver has no portable float)
    cvss_x10 BIGINT,
    severity TEXT NOT NULL,
    severity_rank BIGINT NOT NULL,
    summary TEXT NOT NULL,
    fix_command TEXT,
    restart TEXT NOT NULL,
    state TEXT NOT NULL,
    state_note TEXT NOT NULL DEFAULT '',
    present BIGINT NOT NULL DEFAULT 1,
    fix_task_id TEXT,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (server_id, cve, package)
);
CREATE INDEX vuln_findings_fleet ON vuln_findings(project_id, present, state, severity_rank);
CREATE INDEX vuln_findings_cve ON vuln_findings(cve);
CREATE INDEX vuln_findings_task ON vuln_findings(fix_task_id);

-- Who did what to a finding, and what the system did (detected, fixed, reappeared).
CREATE TABLE vuln_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_id TEXT NOT NULL REFERENCES vuln_findings(id) ON DELETE CASCADE,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    ts BIGINT NOT NULL
);
CREATE INDEX vuln_history_finding ON vuln_history(finding_id, id);

-- Whitelist rules: findings they match are `ignored` on every server in scope, now and later.
CREATE TABLE vuln_rules (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    cve TEXT,
    package TEXT,
    -- JSON list of server ids; empty = every server of the project
    server_ids TEXT NOT NULL DEFAULT '[]',
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Results of the agent's checks from its latest scan, replaced per check.
CREATE TABLE weak_passwords (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    account TEXT NOT NULL,
    uid BIGINT,
    login_allowed BIGINT NOT NULL,
    reasons TEXT NOT NULL,
    shared_with TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, account)
);

CREATE TABLE password_policy_results (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    check_id TEXT NOT NULL,
    title TEXT NOT NULL,
    file TEXT NOT NULL,
    expected TEXT NOT NULL,
    actual TEXT,
    pass BIGINT NOT NULL,
    remedy TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, check_id)
);

-- Per server: when each check last reported, with its summary, and the vulnerability-database
-- version its software was last matched against.
CREATE TABLE risk_state (
    server_id TEXT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    vuln_matched_version BIGINT NOT NULL DEFAULT 0,
    vuln_matched_at BIGINT,
    weak_scanned_at BIGINT,
    weak_summary TEXT NOT NULL DEFAULT '{}',
    policy_scanned_at BIGINT,
    policy_summary TEXT NOT NULL DEFAULT '{}',
    last_scan_at BIGINT,
    last_scan_trigger TEXT NOT NULL DEFAULT ''
);

ALTER TABLE projects ADD COLUMN risk_policy TEXT NOT NULL DEFAULT '{}';
