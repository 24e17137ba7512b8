//! The Hostward protection center. `main.rs` only calls [`cli::main`]; see ARCHITECTURE.md for
//! the map of these modules and the invariants they keep.

pub mod api;
pub mod auth;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod console;
pub(crate) mod findings;
pub mod gateway;
pub mod install;
pub mod listen;
pub mod metrics;
pub mod quickstart;
pub mod server;
pub mod state;
pub mod tls;
pub mod web;

pub use state::AppState;
