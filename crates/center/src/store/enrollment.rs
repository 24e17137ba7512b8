//! Enrollment tokens. (Being written.)
