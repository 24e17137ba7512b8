//! Asset inventory: what agents collect (accounts, ports, processes, software, auto-start
//! items, kernel modules, middleware), its change history, fleet-wide asset views and the
//! project's collection policy.

pub mod api;
pub(crate) mod console;

use std::collections::HashMap;

use futures_util::FutureExt as _;
use hostward_proto::InventoryPolicy;

use super::{Capability, NavEntry, ServerTab, no_jobs};

pub const CAPABILITY: Capability = Capability {
    id: "inventory",
    api: api::router,
    openapi: api::openapi,
    console: console::router,
    nav: Some(NavEntry {
        id: "assets",
        label: "Assets",
        href: "/assets",
    }),
    server_tabs: TABS,
    tab_counts: Some(|state, p, server_id| {
        async move {
            let sum = api::summary(state, p, server_id).await?;
            Ok(sum
                .kinds
                .iter()
                .map(|k| (k.kind.clone(), k.items))
                .collect::<HashMap<_, _>>())
        }
        .boxed()
    }),
    jobs: no_jobs,
    config: Some(|state, server| {
        async move { vec![super::policy_section::<InventoryPolicy>(state, server).await] }.boxed()
    }),
    tasks: &[super::TaskKind {
        kind: hostward_proto::inventory::COLLECT_INVENTORY_TASK,
        check_params: super::params_as::<hostward_proto::inventory::CollectNow>,
    }],
    wake: None,
    policies: &[super::PolicyKind {
        key: <InventoryPolicy as hostward_proto::Section>::KEY,
        label: "Asset inventory",
        check: |v| super::checked::<InventoryPolicy>(v, api::check_policy),
        default: super::default_of::<InventoryPolicy>,
    }],
};

/// One tab per kind, in `InventoryKind::ALL`'s order (a test keeps them in step), then the
/// change history.
const TABS: &[ServerTab] = &[
    ServerTab {
        id: "accounts",
        label: "Accounts",
        path: "inventory/accounts",
    },
    ServerTab {
        id: "ports",
        label: "Ports",
        path: "inventory/ports",
    },
    ServerTab {
        id: "processes",
        label: "Processes",
        path: "inventory/processes",
    },
    ServerTab {
        id: "software",
        label: "Software",
        path: "inventory/software",
    },
    ServerTab {
        id: "autostart",
        label: "Auto-start",
        path: "inventory/autostart",
    },
    ServerTab {
        id: "kernel_modules",
        label: "Kernel modules",
        path: "inventory/kernel_modules",
    },
    ServerTab {
        id: "middleware",
        label: "Middleware / web",
        path: "inventory/middleware",
    },
    ServerTab {
        id: "changes",
        label: "Change history",
        path: "changes",
    },
];

#[cfg(test)]
mod tests {
    use hostward_proto::InventoryKind;

    use super::*;

    #[test]
    fn a_tab_per_kind_with_its_label() {
        for (k, t) in InventoryKind::ALL.iter().zip(TABS) {
            assert_eq!(t.id, k.as_str());
            assert_eq!(t.label, console::kind_label(*k));
            assert_eq!(t.path, format!("inventory/{}", k.as_str()));
        }
        assert_eq!(TABS.len(), InventoryKind::ALL.len() + 1);
    }
}
