//! Every inventory collector reads files an attacker on the host may control (crontabs,
//! authorized_keys, web server configs) or that may be damaged (a truncated dpkg status). The
//! input is split on NUL bytes into the files of a fixture root; every collector must return
//! items and issues, never panic, and each issue must name a file.
#![no_main]
use hostward_agent::inventory::collect::{self, Ctx, HashCache};
use hostward_proto::{InventoryKind, InventoryPolicy};
use libfuzzer_sys::fuzz_target;

const FILES: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/sudoers",
    "var/lib/dpkg/status",
    "etc/crontab",
    "var/spool/cron/crontabs/root",
    "root/.ssh/authorized_keys",
    "proc/net/tcp",
    "proc/net/udp6",
    "proc/modules",
    "proc/stat",
    "etc/nginx/nginx.conf",
    "etc/apache2/sites-enabled/000-default.conf",
    "etc/ld.so.preload",
    "etc/systemd/system/x.service",
];

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir_in("/dev/shm").expect("tempdir");
    for (part, path) in data.split(|b| *b == 0).zip(FILES) {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, part).unwrap();
    }
    let policy = InventoryPolicy::default();
    let hashes = HashCache::default();
    let ctx = Ctx { root: dir.path(), policy: &policy, hashes: &hashes };
    for kind in InventoryKind::ALL {
        let c = collect::collect(kind, &ctx);
        for issue in &c.issues {
            assert!(!issue.file.is_empty() || !issue.message.is_empty(), "{issue:?}");
        }
    }
});
