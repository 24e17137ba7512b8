//! Responders: what the agent does about an attack. `nft` blocks source addresses with a table
//! of our own in nftables.

pub mod nft;
