//! The Hostward agent: its capabilities, one folder per module (`inventory`, `risk`,
//! `bruteforce`, `quarantine`, `behaviour`, `fim`, `tamper`, `ransom`, `malware`), the list of
//! what runs
//! (`modules`), the fanotify calls they share, the config file and the command line. The
//! runtime they plug into (link, outbox, enrollment, daemon) is `hostward-agent-core`. The
//! binary (`main.rs`) only calls [`cli::main`]. See ARCHITECTURE.md.

pub mod behaviour;
pub mod bruteforce;
pub mod cli;
pub mod config;
pub mod fanotify;
pub mod fim;
pub mod inventory;
pub mod malware;
pub mod mem;
pub mod modules;
pub mod objects;
pub mod quarantine;
pub mod ransom;
pub mod risk;
pub mod tamper;
