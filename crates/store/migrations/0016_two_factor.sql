-- Hostward schema v16 (both backends): two-factor console sign-in. A user's TOTP seed, sealed
-- by the center (never stored in the clear), is pending until a first code confirms it
-- (`totp_enabled_at`); `totp_last_step` is the newest time step a code was accepted for, so
-- a code works once. Recovery codes are kept as SHA-256 digests, each usable once. A project
-- may require every member to sign in with a second factor.
ALTER TABLE users ADD COLUMN totp_sealed TEXT;
ALTER TABLE users ADD COLUMN totp_enabled_at BIGINT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
ALTER TABLE projects ADD COLUMN require_two_factor BIGINT NOT NULL DEFAULT 0;
