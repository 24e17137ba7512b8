//! Users, memberships, console sessions, API tokens. (Being written.)
