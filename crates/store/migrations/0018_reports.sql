-- Hostward schema v18 (both backends): the dashboard's daily snapshots and security reports.
-- A project's score and open risk counts once a day (UTC day number), written by the
-- dashboard job and overwritten through the day, so the 7-day trend shows what was measured
-- and a day without a row is "no data".
CREATE TABLE score_snapshots (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    day BIGINT NOT NULL,
    score BIGINT NOT NULL,
    vulns BIGINT NOT NULL,
    baseline_failed BIGINT NOT NULL,
    alarms BIGINT NOT NULL,
    weak_passwords BIGINT NOT NULL,
    unprotected BIGINT NOT NULL,
    servers BIGINT NOT NULL,
    taken_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, day)
);
-- Report schedules: a cron expression (5 fields, UTC), the period each report covers and its
-- formats. `next_run` moves on in the same transaction that stores the run's report, so a
-- run is neither lost nor repeated across restarts and replicas.
CREATE TABLE report_schedules (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    cron TEXT NOT NULL,
    range_kind TEXT NOT NULL,
    formats TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    next_run BIGINT NOT NULL,
    last_run BIGINT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX report_schedules_due ON report_schedules(enabled, next_run);
-- Generated reports: what the report says, as JSON, rendered to HTML or PDF when downloaded
-- (so a report keeps saying what was true when it was made). A scheduled report is emailed
-- once: `delivery` pending -> sent/failed, claimed for a while by the replica sending it.
-- No foreign key on schedule_id: deleting a schedule keeps its reports.
CREATE TABLE reports (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    schedule_id TEXT,
    range_kind TEXT NOT NULL,
    range_from BIGINT NOT NULL,
    range_to BIGINT NOT NULL,
    formats TEXT NOT NULL,
    content TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    delivery TEXT NOT NULL DEFAULT 'none',
    delivery_claimed_until BIGINT,
    delivery_note TEXT NOT NULL DEFAULT '',
    UNIQUE (schedule_id, range_from)
);
CREATE INDEX reports_project ON reports(project_id, created_at);
CREATE INDEX reports_delivery ON reports(delivery);
