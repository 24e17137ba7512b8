-- Hostward schema v14 (both backends): why a server's risk status is `pending` (which checks
-- have not reported yet, or that no vulnerability database is imported), as its agent and
-- protection statuses have theirs. Existing rows get theirs when the center starts and
-- recomputes every server's risk status.
ALTER TABLE servers ADD COLUMN risk_reason TEXT NOT NULL DEFAULT 'no risk check has reported yet (an agent runs its first scan a minute after it starts)';
