//! The Hostward agent's runtime: the link to the center (`link`), the durable outbox, enrollment,
//! host facts, the [`module::Module`] interface and the [`daemon::Daemon`] that drives modules.
//! It names no capability; capabilities are modules that the `hostward-agent` crate lists, and
//! `hostward-sim` uses this crate alone. See ARCHITECTURE.md.

pub mod daemon;
pub mod enroll;
pub mod facts;
pub mod link;
pub mod module;
pub mod outbox;
pub mod tasks;
pub mod util;

pub use daemon::Daemon;
pub use module::{Ctx, Module, RecordSender};
