//! Hostward's malware scanner: YARA rules (yara-x: the shipped set in `content/yara/` plus rule
//! files a user imports) and hash indicators (SHA-256, MD5), over files and, within limits,
//! the archives in them (zip, gzip, tar, nested to a depth). It runs as a process of its own
//! (`hostward-scanner`), which the agent starts at low priority with CPU and memory caps: its
//! build is heavy (yara-x) and a scan is the one thing that may read every byte of a host.
//!
//! `rules` compiles sources (errors name source, line and column), `indicators` parses hash
//! lists, `archive` unpacks with bomb limits, `engine` scans one file and what it contains,
//! `clamd` asks the host's clamd about the formats only it opens, `walk` goes through a
//! scan's paths in an order a checkpoint can resume. Without the `engine` feature (the fuzz
//! targets) only the pure parts build: no yara-x.

pub mod archive;
pub mod clamd;
#[cfg(feature = "engine")]
pub mod engine;
pub mod indicators;
#[cfg(feature = "engine")]
pub mod rules;
pub mod walk;
