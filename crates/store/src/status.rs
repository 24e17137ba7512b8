//! Pure status rules: which protection status follows from an agent status, and the stable
//! codes of statuses and reasons. The store applies these whenever an agent status changes, so
//! the three status columns never disagree.
//!
//! It lives in the store, not in `proto`, because no agent ever sends or reads these codes (they
//! are the center's own columns), and not in the center, because the store writes them: here the
//! dependencies still point one way, center -> store -> proto.

pub const NOT_INSTALLED: &str = "not_installed";
pub const INSTALLING: &str = "installing";
pub const INSTALL_FAILED: &str = "install_failed";
pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";

pub const AGENT_STATUSES: &[&str] = &[NOT_INSTALLED, INSTALLING, INSTALL_FAILED, ONLINE, OFFLINE];

/// Reasons an agent is offline.
pub mod offline {
    pub const HEARTBEAT_TIMEOUT: &str = "heartbeat_timeout";
    pub const AGENT_STOPPED: &str = "agent_stopped";
    pub const REVOKED: &str = "revoked";
    pub const TLS_ERROR: &str = "tls_error";
    pub const VERSION_UNSUPPORTED: &str = "version_unsupported";
    pub const CLOCK_SKEW: &str = "clock_skew";
}

pub const PROTECTION_ENABLED: &str = "enabled";
pub const PROTECTION_DISABLED: &str = "disabled";
pub const PROTECTION_INTERRUPTED: &str = "interrupted";
/// Why protection is disabled when no edition is bound (unbound, or no quota was left when
/// the server enrolled); a plain switch-off has no reason.
pub const NO_EDITION: &str = "no_edition";
pub const PROTECTION_STATUSES: &[&str] = &[
    PROTECTION_ENABLED,
    PROTECTION_DISABLED,
    PROTECTION_INTERRUPTED,
];

pub const RISK_PENDING: &str = "pending";
pub const RISK_RISKY: &str = "risky";
pub const RISK_SAFE: &str = "safe";
pub const RISK_STATUSES: &[&str] = &[RISK_PENDING, RISK_RISKY, RISK_SAFE];

/// What the agent said when it went away, when it said anything; refines the interruption cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopHint {
    None,
    SystemShutdown,
}

/// Protection status and cause for a server, from its agent status and the user's switch.
pub fn protection_for(
    agent_status: &str,
    agent_reason: &str,
    wanted: bool,
    hint: StopHint,
) -> (&'static str, &'static str) {
    if !wanted {
        return (PROTECTION_DISABLED, "");
    }
    let cause = match agent_status {
        ONLINE => return (PROTECTION_ENABLED, ""),
        NOT_INSTALLED | INSTALLING | INSTALL_FAILED => "agent_not_installed",
        _ if agent_reason == offline::REVOKED => "agent_uninstalled",
        _ if hint == StopHint::SystemShutdown => "server_shutdown",
        _ => "agent_offline",
    };
    (PROTECTION_INTERRUPTED, cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_off_wins_over_everything() {
        assert_eq!(
            protection_for(ONLINE, "", false, StopHint::None),
            (PROTECTION_DISABLED, "")
        );
        assert_eq!(
            protection_for(OFFLINE, offline::REVOKED, false, StopHint::None),
            (PROTECTION_DISABLED, "")
        );
    }

    #[test]
    fn online_agent_protects() {
        assert_eq!(
            protection_for(ONLINE, "", true, StopHint::None),
            (PROTECTION_ENABLED, "")
        );
    }

    #[test]
    fn interruption_causes() {
        assert_eq!(
            protection_for(OFFLINE, offline::HEARTBEAT_TIMEOUT, true, StopHint::None).1,
            "agent_offline"
        );
        assert_eq!(
            protection_for(OFFLINE, offline::REVOKED, true, StopHint::None).1,
            "agent_uninstalled"
        );
        assert_eq!(
            protection_for(
                OFFLINE,
                offline::AGENT_STOPPED,
                true,
                StopHint::SystemShutdown
            )
            .1,
            "server_shutdown"
        );
        assert_eq!(
            protection_for(NOT_INSTALLED, "", true, StopHint::None).1,
            "agent_not_installed"
        );
    }
}
