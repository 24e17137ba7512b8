//! Notification console tests.
