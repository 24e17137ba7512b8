//! THE list of what runs in the agent: one line per module, in the order each config reaches
//! them. A module that needs another gets its handle here (risk gets inventory's, for the
//! software collection of a scan and the re-collection after a fix; behaviour gets the
//! quarantine, for isolate-and-kill, and bruteforce's firewall, for blocking scanners; fim gets
//! behaviour's, to name writers from its process table, and ransom's bait list, to leave the
//! baits out of its changes; ransom gets the quarantine and behaviour's; malware gets the
//! quarantine, to isolate what it finds and to hold first runs for a scan), never through the
//! runtime.

use std::sync::Arc;

use hostward_agent_core::{Ctx, Module};

use crate::config::Config;

/// Starts every module on the current runtime and returns them for the daemon.
pub fn all(ctx: &Ctx, cfg: &Config) -> Vec<Arc<dyn Module>> {
    let inventory = crate::inventory::spawn(ctx.root.clone(), &ctx.state_dir, ctx.records.clone());
    let risk = crate::risk::spawn(
        &cfg.risk,
        ctx.root.clone(),
        &ctx.state_dir,
        ctx.records.clone(),
        Some(inventory.clone()),
    );
    let bruteforce = crate::bruteforce::runner::spawn(
        &cfg.authlog,
        cfg.firewall.clone(),
        ctx.root.clone(),
        &ctx.state_dir,
        ctx.records.clone(),
    );
    let quarantine = crate::quarantine::spawn(&ctx.state_dir, ctx.records.clone());
    let behaviour = crate::behaviour::runner::spawn(
        &cfg.behaviour,
        ctx.records.clone(),
        quarantine.clone(),
        Some(bruteforce.clone()),
    );
    let baits = crate::ransom::Baits::default();
    let fim = crate::fim::runner::spawn(
        &cfg.fim,
        ctx.root.clone(),
        &ctx.state_dir,
        ctx.records.clone(),
        Some(behaviour.clone()),
        baits.clone(),
    );
    let ransom = crate::ransom::runner::spawn(
        ctx.root.clone(),
        &ctx.state_dir,
        ctx.records.clone(),
        quarantine.clone(),
        Some(behaviour.clone()),
        baits,
    );
    let malware = crate::malware::runner::spawn(
        &cfg.malware,
        ctx.root.clone(),
        &ctx.state_dir,
        ctx.records.clone(),
        quarantine.clone(),
    );
    vec![
        Arc::new(inventory),
        Arc::new(risk),
        Arc::new(bruteforce),
        Arc::new(crate::quarantine::QuarantineModule(quarantine)),
        Arc::new(behaviour),
        Arc::new(fim),
        Arc::new(crate::tamper::runner::spawn(
            ctx.root.clone(),
            &ctx.state_dir,
            ctx.records.clone(),
        )),
        Arc::new(ransom),
        Arc::new(malware),
    ]
}
