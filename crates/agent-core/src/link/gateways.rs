//! The gateway URLs an agent may use: the one enrollment gave, plus every live replica's the
//! center pushes in its config, kept in the state dir so a restart while the first replica is
//! down still knows the others. The daemon connects to the current one and moves to the next
//! when a connect fails or a session is lost; a full round of failures backs off.

use std::path::{Path, PathBuf};

use super::parse_gateway_url;

/// Name of the file in the state dir.
pub const FILE_NAME: &str = "gateways.json";

/// Most URLs kept: a center has a handful of replicas, not hundreds.
const MAX_URLS: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub struct Gateways {
    urls: Vec<String>,
    current: usize,
    /// Connect failures since the last round began at a working gateway.
    failed_in_round: usize,
    file: Option<PathBuf>,
}

impl Gateways {
    /// `primary` first (from identity.json), then the saved list. A file that does not parse is
    /// ignored with a warning: the primary still works.
    pub fn load(primary: &str, file: Option<PathBuf>) -> Gateways {
        let saved: Vec<String> = file
            .as_deref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| match serde_json::from_str(&text) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring an unreadable {FILE_NAME}");
                    None
                }
            })
            .unwrap_or_default();
        let mut g = Gateways {
            urls: vec![primary.to_string()],
            current: 0,
            failed_in_round: 0,
            file,
        };
        g.merge(&saved);
        g
    }

    pub fn current(&self) -> &str {
        &self.urls[self.current]
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The current gateway failed (connect refused, session lost): move to the next. Returns
    /// true when every gateway has failed since the last good session, i.e. it is time to
    /// back off rather than try the next at once.
    pub fn failed(&mut self) -> bool {
        self.failed_in_round += 1;
        self.current = (self.current + 1) % self.urls.len();
        if self.failed_in_round >= self.urls.len() {
            self.failed_in_round = 0;
            true
        } else {
            false
        }
    }

    /// A session got its config: the current gateway works.
    pub fn worked(&mut self) {
        self.failed_in_round = 0;
    }

    /// The center's list of live replicas. Adds the new ones (the current one stays current,
    /// and URLs the center no longer lists stay too, at the end: a replica that is down now is
    /// still worth a try later) and saves the list when it changed.
    pub fn update(&mut self, advertised: &[String]) {
        if self.merge(advertised) {
            self.save();
        }
    }

    fn merge(&mut self, urls: &[String]) -> bool {
        let mut changed = false;
        for u in urls {
            if self.urls.len() >= MAX_URLS {
                break;
            }
            if self.urls.iter().any(|have| have == u) {
                continue;
            }
            match parse_gateway_url(u) {
                Ok(_) => {
                    self.urls.push(u.clone());
                    changed = true;
                }
                Err(e) => tracing::warn!(error = %e, "ignoring an advertised gateway"),
            }
        }
        changed
    }

    fn save(&self) {
        let Some(file) = &self.file else { return };
        let text = serde_json::to_string_pretty(&self.urls).expect("a list of strings serialises");
        match crate::util::write_atomic(file, text.as_bytes(), 0o644) {
            Ok(()) => tracing::info!(gateways = ?self.urls, "saved the center's gateway list"),
            Err(e) => {
                tracing::warn!(error = %e, path = %file.display(), "could not save the gateway list")
            }
        }
    }

    /// The saved file's path in `state_dir`.
    pub fn file_in(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "wss://a:10180/agent/v1";
    const B: &str = "wss://b:10180/agent/v1";
    const C: &str = "wss://c:10180/agent/v1";

    #[test]
    fn moves_on_and_backs_off_after_a_full_round() {
        let mut g = Gateways::load(A, None);
        g.update(&[A.into(), B.into(), C.into(), "http://nope".into()]);
        assert_eq!(
            g.len(),
            3,
            "the bad URL is ignored, the known one not doubled"
        );
        assert_eq!(g.current(), A);
        assert!(!g.failed());
        assert_eq!(g.current(), B);
        assert!(!g.failed());
        assert_eq!(g.current(), C);
        assert!(g.failed(), "all three failed: back off");
        assert_eq!(g.current(), A);
        assert!(!g.failed());
        g.worked();
        assert!(
            !g.failed() && !g.failed(),
            "a good session starts a new round"
        );
        assert!(g.failed());
    }

    #[test]
    fn a_single_gateway_backs_off_every_time() {
        let mut g = Gateways::load(A, None);
        assert!(g.failed());
        assert!(g.failed());
        assert_eq!(g.current(), A);
    }

    #[test]
    fn the_list_survives_a_restart_and_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = Gateways::file_in(dir.path());
        let mut g = Gateways::load(A, Some(file.clone()));
        g.update(&[B.into()]);
        let again = Gateways::load(A, Some(file.clone()));
        assert_eq!(again.urls, vec![A.to_string(), B.to_string()]);
        std::fs::write(&file, "{not json").unwrap();
        assert_eq!(Gateways::load(A, Some(file)).urls, vec![A.to_string()]);
    }
}
