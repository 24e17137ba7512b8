//! Notification API tests.
