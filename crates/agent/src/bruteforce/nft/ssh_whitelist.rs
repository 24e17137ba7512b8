//! The SSH login whitelist's chain in our table (the reference product's
//! `IN_HIDS_SSHD_WHITE_LIST`):
//!
//! ```text
//! chain ssh_whitelist {
//!     type filter hook input priority -10; policy accept;
//!     iif "lo" accept
//!     ip saddr { 192.0.2.0/24, 198.51.100.7 } accept
//!     ip6 saddr { 2001:db8::/32 } accept
//!     tcp dport { 22 } tcp flags & (syn | ack) == syn counter drop
//! }
//! ```
//!
//! An `accept` ends only this chain, so the chain can only take packets away, never let in
//! what another table drops. Only a connection's opening SYN to sshd's ports from an unlisted
//! address is dropped: loopback passes first; every other port and protocol falls through to
//! the policy; and connections already open are untouched whether or not conntrack runs (a
//! `ct state` match would misjudge connections opened before conntrack started tracking in
//! this network namespace, which the netns test showed: they were cut). A family with no entry
//! has no accept rule, so all its new sshd connections are dropped. Entries inside another entry are left out: some nft
//! versions refuse overlapping intervals in one set. Off means no chain at all.

use hostward_proto::bruteforce::{Net, SshWhitelist};
use std::fmt::Write as _;

use super::{Error, Nft, PRIORITY, parse_listing};

pub const CHAIN: &str = "ssh_whitelist";

/// What the chain holds: the entries per family and the ports it closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub v4: Vec<Net>,
    pub v6: Vec<Net>,
    /// sshd's ports, sorted, distinct, never empty.
    pub ports: Vec<u16>,
}

impl Rules {
    /// The rules for an enabled whitelist; None when it is off. Refuses what the center would
    /// have refused (a bad entry, an enabled empty list), naming it, so a hand-edited config
    /// cannot close sshd to everyone.
    pub fn of(wl: &SshWhitelist, ports: &[u16]) -> Result<Option<Rules>, String> {
        wl.validate()?;
        if !wl.enabled {
            return Ok(None);
        }
        let nets = wl.nets().ok_or("addrs: an entry does not parse")?;
        // Keep an entry only when no other entry covers it; of two equal ones (removed by
        // `nets` already) the first would stay.
        let kept: Vec<Net> = nets
            .iter()
            .enumerate()
            .filter(|&(i, n)| {
                !nets
                    .iter()
                    .enumerate()
                    .any(|(j, m)| j != i && m.covers(n) && !n.covers(m))
            })
            .map(|(_, n)| *n)
            .collect();
        let mut ports: Vec<u16> = ports.iter().copied().filter(|&p| p != 0).collect();
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            return Err("no sshd port to close".into());
        }
        Ok(Some(Rules {
            v4: kept
                .iter()
                .copied()
                .filter(|n| n.addr().is_ipv4())
                .collect(),
            v6: kept
                .iter()
                .copied()
                .filter(|n| n.addr().is_ipv6())
                .collect(),
            ports,
        }))
    }

    /// How many entries the chain holds.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The transaction that makes the chain hold `rules`, or removes it for None. Creating the
/// table first lets both run on a host where our table is gone.
pub fn script(table: &str, rules: Option<&Rules>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "add table inet {table}");
    let _ = writeln!(
        s,
        "add chain inet {table} {CHAIN} {{ type filter hook input priority {PRIORITY}; policy accept; }}"
    );
    // Replaced in one transaction: no packet sees the chain half-built.
    let _ = writeln!(s, "flush chain inet {table} {CHAIN}");
    let Some(r) = rules else {
        // nft 1.0 has no `destroy`: adding first makes the delete succeed either way.
        let _ = writeln!(s, "delete chain inet {table} {CHAIN}");
        return s;
    };
    let rule = |s: &mut String, text: &str| {
        let _ = writeln!(s, "add rule inet {table} {CHAIN} {text}");
    };
    rule(&mut s, "iif \"lo\" accept");
    for (family, nets) in [("ip", &r.v4), ("ip6", &r.v6)] {
        if nets.is_empty() {
            continue;
        }
        let list: Vec<String> = nets.iter().map(Net::to_string).collect();
        rule(
            &mut s,
            &format!("{family} saddr {{ {} }} accept", list.join(", ")),
        );
    }
    let ports: Vec<String> = r.ports.iter().map(u16::to_string).collect();
    rule(
        &mut s,
        &format!(
            "tcp dport {{ {} }} tcp flags & (syn | ack) == syn counter drop",
            ports.join(", ")
        ),
    );
    s
}

/// Whether the listing of our table holds the chain.
pub fn has_chain(json: &str) -> Result<bool, Error> {
    let listing = parse_listing(json)?;
    Ok(listing.nftables.iter().any(|o| {
        o.get("chain")
            .and_then(|c| c.get("name"))
            .and_then(|n| n.as_str())
            == Some(CHAIN)
    }))
}

impl Nft {
    /// Puts the whitelist chain in force with `rules`, or removes it for None. One nft
    /// transaction, through the same runner as the blocks.
    pub async fn set_ssh_whitelist(&self, rules: Option<&Rules>) -> Result<(), Error> {
        let _g = self.state.lock().await;
        self.apply(&script(&self.cfg.table, rules)).await
    }

    /// Whether the chain is in the kernel now (false when our table is gone).
    pub async fn ssh_whitelist_present(&self) -> Result<bool, Error> {
        match self.list_table_json().await {
            Ok(out) => has_chain(&out),
            // The table itself is gone (flushed from outside).
            Err(Error::Nft { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wl(enabled: bool, addrs: &[&str]) -> SshWhitelist {
        SshWhitelist {
            enabled,
            addrs: addrs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_chain_accepts_loopback_and_the_list_then_drops_new_sshd_connections() {
        let r = Rules::of(
            &wl(
                true,
                &["192.0.2.0/24", "2001:db8::/32", "::ffff:198.51.100.7"],
            ),
            &[2222, 22, 22],
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            script("hostward", Some(&r)),
            "add table inet hostward\n\
             add chain inet hostward ssh_whitelist { type filter hook input priority -10; policy accept; }\n\
             flush chain inet hostward ssh_whitelist\n\
             add rule inet hostward ssh_whitelist iif \"lo\" accept\n\
             add rule inet hostward ssh_whitelist ip saddr { 192.0.2.0/24, 198.51.100.7 } accept\n\
             add rule inet hostward ssh_whitelist ip6 saddr { 2001:db8::/32 } accept\n\
             add rule inet hostward ssh_whitelist tcp dport { 22, 2222 } tcp flags & (syn | ack) == syn counter drop\n"
        );
    }

    #[test]
    fn a_family_without_entries_gets_no_accept_and_covered_entries_go() {
        let r = Rules::of(&wl(true, &["10.1.0.0/16", "10.0.0.0/8", "10.1.2.3"]), &[22])
            .unwrap()
            .unwrap();
        let s = script("t", Some(&r));
        assert!(
            s.contains("add rule inet t ssh_whitelist ip saddr { 10.0.0.0/8 } accept\n"),
            "{s}"
        );
        assert!(!s.contains("ip6 saddr"), "{s}");
        assert!(
            s.ends_with(
                "add rule inet t ssh_whitelist tcp dport { 22 } tcp flags & (syn | ack) == syn counter drop\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn off_removes_the_chain_and_bad_lists_are_refused() {
        assert_eq!(Rules::of(&wl(false, &["192.0.2.1"]), &[22]), Ok(None));
        assert_eq!(
            script("hostward", None),
            "add table inet hostward\n\
             add chain inet hostward ssh_whitelist { type filter hook input priority -10; policy accept; }\n\
             flush chain inet hostward ssh_whitelist\n\
             delete chain inet hostward ssh_whitelist\n"
        );
        let e = Rules::of(&wl(true, &[]), &[22]).unwrap_err();
        assert!(e.starts_with("addrs: an enabled whitelist needs"), "{e}");
        let e = Rules::of(&wl(true, &["192.0.2.1", "x"]), &[22]).unwrap_err();
        assert!(e.starts_with("addrs[1]: \"x\""), "{e}");
        assert_eq!(
            Rules::of(&wl(true, &["192.0.2.1"]), &[]).unwrap_err(),
            "no sshd port to close"
        );
    }

    #[test]
    fn the_chain_is_found_in_a_listing() {
        let with = r#"{"nftables": [{"metainfo": {}}, {"table": {"family": "inet", "name": "hostward"}},
            {"chain": {"family": "inet", "table": "hostward", "name": "input"}},
            {"chain": {"family": "inet", "table": "hostward", "name": "ssh_whitelist"}}]}"#;
        assert!(has_chain(with).unwrap());
        let without = r#"{"nftables": [{"chain": {"name": "input"}}]}"#;
        assert!(!has_chain(without).unwrap());
        assert!(has_chain("not json").is_err());
    }
}
