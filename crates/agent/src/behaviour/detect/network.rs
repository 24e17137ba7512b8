//! Network behaviour of processes: connections to indicator addresses and mining pools, and
//! miners recognised at exec by name or by a pool URL in their arguments.

use hostward_sensor::{Connect, Exec};

use super::{Compiled, Finding, name_of};
use crate::behaviour::table::Table;

pub fn on_connect(cfg: &Compiled, c: &Connect, t: &Table, out: &mut Vec<Finding>) {
    let exe = t.get(c.task.pid).map(|p| p.exe.clone()).unwrap_or_default();
    let ip = c.peer_ip();
    if cfg.on("abnormal_outbound")
        && let Some(net) = cfg.ioc.iter().find(|n| n.contains(ip))
    {
        out.push(Finding {
            alarm_type: "abnormal_outbound",
            key: format!("{exe} -> {ip}"),
            pid: c.task.pid,
            peer: Some(c.peer),
            rule: Some(format!("indicator {net}")),
            details: vec![format!(
                "{} connection to {} (on the indicator list as {net})",
                c.proto, c.peer
            )],
            ..Default::default()
        });
    }
    if cfg.on("crypto_miner")
        && cfg.policy.stratum_ports.contains(&c.peer.port())
        && !ip.is_unspecified()
    {
        out.push(Finding {
            alarm_type: "crypto_miner",
            key: format!("{exe} -> {ip}"),
            pid: c.task.pid,
            peer: Some(c.peer),
            rule: Some(format!("stratum port {}", c.peer.port())),
            details: vec![format!(
                "{} connection to {}: port {} is a mining pool (stratum) port",
                c.proto,
                c.peer,
                c.peer.port()
            )],
            isolate: true,
            ..Default::default()
        });
    }
}

pub fn miner_exec(cfg: &Compiled, e: &Exec, out: &mut Vec<Finding>) {
    if !cfg.on("crypto_miner") {
        return;
    }
    let exe = e.exe();
    let name = name_of(&exe).to_ascii_lowercase();
    let by_name = cfg
        .policy
        .miner_names
        .iter()
        .any(|m| name == m.to_ascii_lowercase());
    let pool = e.argv.iter().find(|a| {
        let a = a.to_ascii_lowercase();
        a.contains("stratum+tcp://")
            || a.contains("stratum+ssl://")
            || a.contains("stratum2+tcp://")
    });
    if !by_name && pool.is_none() {
        return;
    }
    let mut details = Vec::new();
    if by_name {
        details.push(format!("{name} is a known miner's name"));
    }
    if let Some(p) = pool {
        details.push(format!(
            "mining pool argument: {}",
            p.chars().take(400).collect::<String>()
        ));
    }
    out.push(Finding {
        alarm_type: "crypto_miner",
        key: exe.clone(),
        pid: e.task.pid,
        rule: Some(if by_name {
            "miner name".into()
        } else {
            "pool URL".into()
        }),
        file: Some(exe),
        details,
        isolate: true,
        ..Default::default()
    });
}
