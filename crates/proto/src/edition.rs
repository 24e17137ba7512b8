//! Editions: which protection features a server gets. The matrix is the reference product's
//! (Huawei Cloud HSS, `../shared/reference/hss-features.md` §1.1 and §1.2), for the features
//! Hostward has; each policy turns off what its server's edition lacks ([`crate::Section::gate`]),
//! so switching editions is a config push: the agent is never reinstalled.
//!
//! Risk checks (vulnerabilities, weak passwords, password policy, configuration baselines) run
//! in every edition: they are what the risk status is made of, and an edition without them
//! would show a server as having no known risks when nobody looked.

use serde::{Deserialize, Serialize};

/// A protection edition, cheapest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Edition {
    /// Detects (vulnerabilities, weak passwords, brute force) and never blocks.
    Basic,
    /// Basic plus blocking, intrusion detection and malware scanning.
    Professional,
    /// Professional plus asset discovery and file integrity; the default policy group only.
    Enterprise,
    /// Enterprise plus ransomware protection, port-scan detection and honeypots, and custom
    /// policy groups.
    Premium,
    /// Premium plus web tamper protection: everything Hostward has.
    #[default]
    Wtp,
}

/// A feature an edition may include.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Every inventory kind; without it only software is collected (vulnerability matching
    /// needs it).
    AssetDiscovery,
    /// Brute-force and abnormal-login detection (alarms).
    BruteForce,
    /// Acting on what is detected: firewall blocks, kills, isolation.
    Blocking,
    /// Process behaviour detection: reverse shells, privilege escalation, high-risk commands,
    /// persistence, miners, fileless execution, injection, kernel modules.
    IntrusionDetection,
    FileIntegrity,
    Malware,
    Ransomware,
    /// Port-scan detection and honeypot ports.
    PortScan,
    WebTamper,
    /// Servers may use policy groups other than the project's default.
    CustomPolicyGroups,
}

impl Feature {
    pub const ALL: [Feature; 10] = [
        Feature::AssetDiscovery,
        Feature::BruteForce,
        Feature::Blocking,
        Feature::IntrusionDetection,
        Feature::FileIntegrity,
        Feature::Malware,
        Feature::Ransomware,
        Feature::PortScan,
        Feature::WebTamper,
        Feature::CustomPolicyGroups,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Feature::AssetDiscovery => "asset_discovery",
            Feature::BruteForce => "brute_force",
            Feature::Blocking => "blocking",
            Feature::IntrusionDetection => "intrusion_detection",
            Feature::FileIntegrity => "file_integrity",
            Feature::Malware => "malware",
            Feature::Ransomware => "ransomware",
            Feature::PortScan => "port_scan",
            Feature::WebTamper => "web_tamper",
            Feature::CustomPolicyGroups => "custom_policy_groups",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Feature::AssetDiscovery => "Asset discovery",
            Feature::BruteForce => "Brute-force detection",
            Feature::Blocking => "Blocking (firewall, kill, isolate)",
            Feature::IntrusionDetection => "Intrusion detection",
            Feature::FileIntegrity => "File integrity",
            Feature::Malware => "Malware scanning",
            Feature::Ransomware => "Ransomware protection",
            Feature::PortScan => "Port scans and honeypots",
            Feature::WebTamper => "Web tamper protection",
            Feature::CustomPolicyGroups => "Custom policy groups",
        }
    }
}

impl Edition {
    pub const ALL: [Edition; 5] = [
        Edition::Basic,
        Edition::Professional,
        Edition::Enterprise,
        Edition::Premium,
        Edition::Wtp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Basic => "basic",
            Edition::Professional => "professional",
            Edition::Enterprise => "enterprise",
            Edition::Premium => "premium",
            Edition::Wtp => "wtp",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Edition::Basic => "Basic",
            Edition::Professional => "Professional",
            Edition::Enterprise => "Enterprise",
            Edition::Premium => "Premium",
            Edition::Wtp => "Web tamper protection",
        }
    }

    /// The edition named `s`, or an error listing the names.
    pub fn parse(s: &str) -> Result<Edition, String> {
        Edition::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Edition::ALL.iter().map(|e| e.as_str()).collect();
                format!(
                    "unknown edition {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }

    /// The features of this edition.
    pub fn features(self) -> &'static [Feature] {
        use Feature::*;
        match self {
            Edition::Basic => &[BruteForce],
            Edition::Professional => &[BruteForce, Blocking, IntrusionDetection, Malware],
            Edition::Enterprise => &[
                AssetDiscovery,
                BruteForce,
                Blocking,
                IntrusionDetection,
                FileIntegrity,
                Malware,
            ],
            Edition::Premium => &[
                AssetDiscovery,
                BruteForce,
                Blocking,
                IntrusionDetection,
                FileIntegrity,
                Malware,
                Ransomware,
                PortScan,
                CustomPolicyGroups,
            ],
            Edition::Wtp => &Feature::ALL,
        }
    }

    pub fn has(self, f: Feature) -> bool {
        self.features().contains(&f)
    }
}

impl std::fmt::Display for Edition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_edition_includes_the_ones_below_it() {
        for pair in Edition::ALL.windows(2) {
            for f in pair[0].features() {
                assert!(pair[1].has(*f), "{} lacks {:?} of {}", pair[1], f, pair[0]);
            }
        }
    }

    #[test]
    fn the_reference_matrix_holds() {
        // §1.1: basic has no blocking; §1.2: ransomware and port scans are not enterprise's,
        // web tamper protection is only its own edition's; §10.1: custom groups are premium's.
        assert!(Edition::Basic.has(Feature::BruteForce));
        assert!(!Edition::Basic.has(Feature::Blocking));
        assert!(!Edition::Basic.has(Feature::Malware));
        assert!(Edition::Professional.has(Feature::Malware));
        assert!(!Edition::Professional.has(Feature::AssetDiscovery));
        assert!(!Edition::Enterprise.has(Feature::Ransomware));
        assert!(!Edition::Enterprise.has(Feature::PortScan));
        assert!(!Edition::Enterprise.has(Feature::CustomPolicyGroups));
        assert!(Edition::Premium.has(Feature::Ransomware));
        assert!(!Edition::Premium.has(Feature::WebTamper));
        assert!(Edition::Wtp.has(Feature::WebTamper));
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_named() {
        for e in Edition::ALL {
            assert_eq!(Edition::parse(e.as_str()), Ok(e));
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.as_str()));
        }
        let err = Edition::parse("gold").unwrap_err();
        assert!(err.contains("\"gold\"") && err.contains("premium"), "{err}");
    }
}
