//! The console's view of the auth and API layers, in one place.

pub use crate::api::ApiError;
pub use crate::auth::{
    Principal, Role, SESSION_COOKIE, login, logout, peer_ip, principal_from_parts, removal_cookie,
    session_cookie,
};
