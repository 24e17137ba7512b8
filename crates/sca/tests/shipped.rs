//! Every policy shipped in content/sca loads, and check ids are unique across them (the center
//! keys results by check id).

use std::collections::HashMap;
use std::path::Path;

#[test]
fn every_shipped_policy_loads_with_unique_check_ids() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../content/sca");
    let mut seen: HashMap<i64, String> = HashMap::new();
    let mut files = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let policy = hostward_sca::load(&name, &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(policy.file, name, "policy.file must name its own file");
        for c in &policy.checks {
            if let Some(other) = seen.insert(c.id, name.clone()) {
                panic!("check id {} is in both {other} and {name}", c.id);
            }
            assert!(
                !c.title.is_empty() && !c.rationale.is_empty() && !c.remediation.is_empty(),
                "{name} {}",
                c.id
            );
        }
        files += 1;
    }
    assert!(files >= 4, "found {files} policies in {}", dir.display());
    let listed: Vec<&str> = hostward_sca::SHIPPED.iter().map(|(f, _)| *f).collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    assert_eq!(
        listed, on_disk,
        "SHIPPED in lib.rs lists every file of content/sca, sorted"
    );
    assert_eq!(hostward_sca::shipped().len(), files);
}
