-- Hostward schema v7 (both backends): failed-login counters, shared by every replica.

-- One row per counter: `acct:<user name, lower case>|<source>` counts the failed sign-ins (and
-- wrong current passwords) of one account from one source; `src:<source>` counts one source's
-- failures across all accounts. <source> is an IPv4 address or an IPv6 /64. An attempt reserves
-- its place (failures + 1) before the password is checked and gives it back on success, so a
-- burst of parallel attempts cannot get more checks than the limit. A counter starts again
-- once its window (the lockout time) has passed.
CREATE TABLE login_attempts (
    scope TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_start BIGINT NOT NULL
);
CREATE INDEX login_attempts_window ON login_attempts(window_start);
