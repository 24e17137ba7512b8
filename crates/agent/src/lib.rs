//! The Hostward agent. The binary (`main.rs`) only calls [`cli::main`]; `hostward-sim` and the
//! end-to-end tests use [`link`] and [`enroll`] directly. See ARCHITECTURE.md.

pub mod cli;
pub mod collect;
pub mod config;
pub mod detect;
pub mod enroll;
pub mod facts;
pub mod inventory;
pub mod link;
pub mod mem;
pub mod respond;
pub mod risk;
pub mod tasks;
