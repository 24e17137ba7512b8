//! Analysis on the center: what the agents' raw reports mean for risk. `vulns` matches every
//! server's software against the vulnerability database and keeps the findings current.

pub mod vulns;

pub use vulns::Analyzer;
