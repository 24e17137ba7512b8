//! Loaded kernel modules from `/proc/modules`, each with its file under
//! `/lib/modules/<release>/` (found through `modules.dep`) and that file's hash.

use std::collections::HashMap;

use hostward_proto::inventory::{CollectIssue, Items, KernelModule};

use super::{Collected, Ctx};

const MODULES: &str = "/proc/modules";

pub fn collect(ctx: &Ctx) -> Collected {
    let mut issues = Vec::new();
    let mut items = Vec::new();
    // A kernel built without module support has no /proc/modules: an empty list, not a problem.
    if let Some(text) = ctx.read_text(MODULES, &mut issues) {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match parse_line(line) {
                Ok(m) => items.push(m),
                Err(msg) => issues.push(ctx.issue(
                    MODULES,
                    Some(u32::try_from(i + 1).unwrap_or(u32::MAX)),
                    msg,
                )),
            }
        }
    }
    if !items.is_empty() {
        let files = module_files(ctx, &mut issues);
        for m in &mut items {
            if let Some(path) = files.get(&m.name) {
                m.sha256 = ctx.hashes.sha256(&ctx.path(path));
                m.path = Some(path.clone());
            }
        }
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Collected {
        items: Items::KernelModules(items),
        issues,
    }
}

/// `name size refcount used_by state address [taints]`, `used_by` being `-` or `a,b,`.
fn parse_line(line: &str) -> Result<KernelModule, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 5 {
        return Err(format!(
            "expected at least 5 fields, found {}: {line:?}",
            f.len()
        ));
    }
    let name = f[0];
    if !is_module_name(name) {
        return Err(format!("bad module name {name:?}"));
    }
    let size = f[1]
        .parse()
        .map_err(|_| format!("bad size {:?} of {name}", f[1]))?;
    let used_by: Vec<String> = if f[3] == "-" {
        Vec::new()
    } else {
        f[3].split(',')
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    };
    if let Some(bad) = used_by.iter().find(|u| !is_module_name(u)) {
        return Err(format!("bad user {bad:?} of {name}"));
    }
    let state = f[4];
    if !matches!(state, "Live" | "Loading" | "Unloading") {
        return Err(format!("bad state {state:?} of {name}"));
    }
    Ok(KernelModule {
        name: name.to_string(),
        size,
        used_by,
        state: state.to_string(),
        path: None,
        sha256: None,
    })
}

/// What the kernel accepts as a module name once `-` is normalised; `[` and `]` appear in
/// `used_by` for the pseudo-users `[permanent]` and `[unsafe]`.
fn is_module_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'[' | b']'))
}

/// Module name -> host path of its file, from `modules.dep` of the running kernel.
fn module_files(ctx: &Ctx, issues: &mut Vec<CollectIssue>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(release) = ctx
        .read_text("/proc/sys/kernel/osrelease", issues)
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty() && !r.contains('/') && r != "." && r != "..")
    else {
        return out;
    };
    let dir = format!("/lib/modules/{release}");
    let dep = format!("{dir}/modules.dep");
    let Some(text) = ctx.read_text(&dep, issues) else {
        return out;
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let file = line.split_once(':').map(|(f, _)| f.trim());
        let Some(name) = file.and_then(module_name) else {
            issues.push(ctx.issue(
                &dep,
                Some(u32::try_from(i + 1).unwrap_or(u32::MAX)),
                format!("expected \"kernel/.../name.ko: deps\", found {line:?}"),
            ));
            continue;
        };
        let file = file.unwrap_or_default();
        // Old depmod wrote absolute paths; current ones are relative to the release dir.
        let path = if file.starts_with('/') {
            file.to_string()
        } else {
            format!("{dir}/{file}")
        };
        out.entry(name).or_insert(path);
    }
    out
}

/// `kernel/fs/xfs/xfs.ko.zst` -> `xfs`; `-` and `_` are the same to the kernel.
fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    is_module_name(stem).then(|| stem.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hostward_proto::InventoryPolicy;

    use super::super::HashCache;
    use super::super::hashcache::sha256_hex;
    use super::*;

    fn write(root: &Path, host: &str, bytes: impl AsRef<[u8]>) {
        let p = root.join(host.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn run(root: &Path, hashes: &HashCache) -> (Vec<KernelModule>, Vec<CollectIssue>) {
        let policy = InventoryPolicy::default();
        let c = collect(&Ctx {
            root,
            policy: &policy,
            hashes,
        });
        match c.items {
            Items::KernelModules(m) => (m, c.issues),
            other => panic!("wrong kind {other:?}"),
        }
    }

    const REL: &str = "6.1.0-18-amd64";

    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "/proc/sys/kernel/osrelease", format!("{REL}\n"));
        write(
            root,
            "/proc/modules",
            "xfs 2191360 1 - Live 0xffffffffc0b5e000\n\
             nf_conntrack 176128 2 nf_nat,xt_conntrack, Live 0xffffffffc0a20000\n\
             snd_hda_codec_hdmi 86016 1 - Loading 0x0000000000000000 (OE)\n\
             libcrc32c 16384 3 xfs,nf_conntrack,[permanent], Live 0xffffffffc0a10000\n",
        );
        let lib = format!("/lib/modules/{REL}");
        write(
            root,
            &format!("{lib}/modules.dep"),
            "kernel/fs/xfs/xfs.ko.xz: kernel/lib/libcrc32c.ko.xz\n\
             kernel/net/netfilter/nf_conntrack.ko.zst: kernel/lib/libcrc32c.ko.xz\n\
             kernel/sound/pci/hda/snd-hda-codec-hdmi.ko:\n\
             kernel/lib/libcrc32c.ko.xz:\n",
        );
        write(
            root,
            &format!("{lib}/kernel/fs/xfs/xfs.ko.xz"),
            b"xfs module",
        );
        write(
            root,
            &format!("{lib}/kernel/sound/pci/hda/snd-hda-codec-hdmi.ko"),
            b"hdmi module",
        );
        dir
    }

    #[test]
    fn modules_with_files_and_hashes() {
        let dir = fixture();
        let hashes = HashCache::default();
        let (mods, issues) = run(dir.path(), &hashes);
        assert!(issues.is_empty(), "{issues:?}");
        let names: Vec<&str> = mods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["libcrc32c", "nf_conntrack", "snd_hda_codec_hdmi", "xfs"]
        );
        let xfs = &mods[3];
        assert_eq!((xfs.size, xfs.state.as_str()), (2_191_360, "Live"));
        assert!(xfs.used_by.is_empty());
        assert_eq!(
            xfs.path.as_deref(),
            Some("/lib/modules/6.1.0-18-amd64/kernel/fs/xfs/xfs.ko.xz")
        );
        assert_eq!(xfs.sha256, Some(sha256_hex(b"xfs module")));
        assert_eq!(mods[1].used_by, ["nf_nat", "xt_conntrack"]);
        assert_eq!(mods[0].used_by, ["xfs", "nf_conntrack", "[permanent]"]);
        let hdmi = &mods[2];
        assert_eq!(hdmi.state, "Loading");
        assert!(
            hdmi.path
                .as_deref()
                .unwrap()
                .ends_with("snd-hda-codec-hdmi.ko")
        );
        assert_eq!(hdmi.sha256, Some(sha256_hex(b"hdmi module")));
        // Listed in modules.dep but its file is missing: the path without a hash.
        assert!(mods[0].path.is_some() && mods[0].sha256.is_none());

        assert_eq!(hashes.len(), 2);
        let (again, _) = run(dir.path(), &hashes);
        assert_eq!(again, mods);
        assert_eq!(hashes.len(), 2);
    }

    #[test]
    fn garbage_lines_are_issues_and_the_rest_is_collected() {
        let dir = fixture();
        let root = dir.path();
        let mut modules = std::fs::read(root.join("proc/modules")).unwrap();
        modules.extend(b"\x7fELF\x02\x01\x01\0\0\xff\xfe 12 1 - Live 0x0\n");
        modules.extend(b"ext4 notanumber 1 - Live 0x0\n");
        modules.extend(b"vfat 20480\n");
        modules.extend(b"fat 86016 1 vfat,\xc3( Live 0x0\n");
        modules.extend(b"loop 32768 0 - Live 0xffffffffc0000000\n");
        std::fs::write(root.join("proc/modules"), modules).unwrap();
        let dep = root.join(format!("lib/modules/{REL}/modules.dep"));
        let mut text = std::fs::read(&dep).unwrap();
        text.extend(b"no colon here\nkernel/drivers/block/loop.ko\xff: \n");
        std::fs::write(&dep, text).unwrap();

        let (mods, issues) = run(root, &HashCache::default());
        let names: Vec<&str> = mods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "libcrc32c",
                "loop",
                "nf_conntrack",
                "snd_hda_codec_hdmi",
                "xfs"
            ]
        );
        let at: Vec<(&str, Option<u32>)> =
            issues.iter().map(|i| (i.file.as_str(), i.line)).collect();
        let dep = "/lib/modules/6.1.0-18-amd64/modules.dep";
        assert_eq!(
            at,
            [
                ("/proc/modules", Some(5)),
                ("/proc/modules", Some(6)),
                ("/proc/modules", Some(7)),
                ("/proc/modules", Some(8)),
                (dep, Some(5)),
                (dep, Some(6)),
            ],
            "{issues:#?}"
        );
        assert!(issues[1].message.contains("notanumber"), "{}", issues[1]);
    }

    #[test]
    fn no_module_support_means_an_empty_list_without_issues() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "/proc/sys/kernel/osrelease", "6.18.0\n");
        let (mods, issues) = run(dir.path(), &HashCache::default());
        assert!(mods.is_empty() && issues.is_empty(), "{mods:?} {issues:?}");

        // Modules loaded but no modules.dep (a container with the host's /proc): no paths.
        let dir = fixture();
        std::fs::remove_dir_all(dir.path().join("lib")).unwrap();
        let (mods, issues) = run(dir.path(), &HashCache::default());
        assert_eq!(mods.len(), 4);
        assert!(mods.iter().all(|m| m.path.is_none()));
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn file_names_map_to_module_names() {
        assert_eq!(
            module_name("kernel/fs/xfs/xfs.ko.xz").as_deref(),
            Some("xfs")
        );
        assert_eq!(
            module_name("kernel/sound/snd-hda-intel.ko.zst").as_deref(),
            Some("snd_hda_intel")
        );
        assert_eq!(
            module_name("/lib/modules/x/kernel/a.ko.gz").as_deref(),
            Some("a")
        );
        assert_eq!(module_name("kernel/readme.txt"), None);
        assert_eq!(module_name(".ko"), None);
    }
}
