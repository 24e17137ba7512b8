//! Audit log. (Being written.)
