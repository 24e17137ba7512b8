//! Argon2id password hashes on a bounded pool, and the rule new passwords must pass.
//!
//! Each Argon2 run needs 19 MiB of working memory. Handing every login to tokio's blocking pool
//! let hundreds run at once (one thread and one 19 MiB block array each, kept by glibc's
//! per-thread arenas long after), so a login flood without any account took gigabytes. Here a
//! fixed set of worker threads each owns one block array that it reuses for every hash; work
//! waits in a bounded queue with a deadline, each source may hold only a few places in it, and
//! whatever does not fit is refused at once with [`ApiError`] 503 `busy` (see [`retry_after`]).
//! Every Argon2 path (login, the dummy check for unknown users, password changes, resets, user
//! creation, the CLI) goes through [`HashPool`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::config::Config;
use crate::web::ApiError;

pub const MIN_PASSWORD_LEN: usize = 12;
/// Argon2 input is bounded so a huge body cannot buy a long hash.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Stored hashes asking for more memory than this are treated as malformed: we never write
/// them, and honouring one would let a tampered row cost any amount of memory.
const MAX_M_COST_KIB: u32 = 64 * 1024;
/// Seconds a client is told to wait when the pool is full.
pub const RETRY_AFTER_SECS: u64 = 1;

// ---------------------------------------------------------------------------------------------
// The rule for new passwords

const COMMON: &str = include_str!("../../../../content/weak_passwords.txt");

/// Runs of these (forwards or backwards, wrapping) are "sequential": `abcdefghijkl`,
/// `123456789012`, `qwertyuiopas`, `0987654321…`.
const SEQUENCES: [&str; 6] = [
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertyuiop",
    "asdfghjkl",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
];

/// Fewer different characters than this is "repetitive" (`aaaaaaaaaaab`, `abababababab`).
const MIN_DISTINCT: usize = 5;

fn common_passwords() -> &'static std::collections::HashSet<String> {
    static SET: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON
            .lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Whether `s` is one unit of at most half its length repeated (`abcabcabcabc`).
fn is_periodic(s: &[char]) -> bool {
    (1..=s.len() / 2).any(|p| s.len().is_multiple_of(p) && s.chunks(p).all(|c| c == &s[..p]))
}

/// Whether `s` runs along one of [`SEQUENCES`], forwards or backwards.
fn is_sequential(lower: &str) -> bool {
    SEQUENCES.iter().any(|seq| {
        // Three copies cover any run of up to two rounds from any starting point.
        let fwd = seq.repeat(3);
        let back: String = fwd.chars().rev().collect();
        lower.chars().count() <= seq.len() * 2 && (fwd.contains(lower) || back.contains(lower))
    })
}

/// The part left after stripping digits and punctuation from both ends (`Password123!` ->
/// `password`): common words with a number stuck on are as weak as the word.
fn core_word(lower: &str) -> &str {
    lower.trim_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation() || c == ' ')
}

/// Checks a password `username` is about to set. `field` names it in the error, which also says
/// the reason.
pub fn validate_new_password(field: &str, password: &str, username: &str) -> Result<(), ApiError> {
    let reject = |why: &str| Err(ApiError::invalid_body(format!("{field}: {why}")));
    let chars: Vec<char> = password.chars().collect();
    if chars.len() < MIN_PASSWORD_LEN {
        return reject(&format!("must be at least {MIN_PASSWORD_LEN} characters"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return reject(&format!("must be at most {MAX_PASSWORD_LEN} bytes"));
    }
    let lower = password.to_lowercase();
    let user = username.trim().to_lowercase();
    if !user.is_empty() {
        let rest = lower
            .strip_prefix(&user)
            .or_else(|| lower.strip_suffix(&user));
        if lower == user || rest.is_some_and(|r| core_word(r).is_empty()) {
            return reject("must not be the user name, with or without digits added");
        }
    }
    let common = common_passwords();
    if common.contains(&lower) {
        return reject("is on the list of commonly used passwords");
    }
    let core = core_word(&lower);
    if !core.is_empty() && core != lower && common.contains(core) {
        return reject("is a commonly used password with digits or symbols added");
    }
    let lower_chars: Vec<char> = lower.chars().collect();
    let mut distinct = lower_chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT || is_periodic(&lower_chars) {
        return reject("is too repetitive (a few characters or one group repeated)");
    }
    if is_sequential(&lower) {
        return reject("is a keyboard or alphabet sequence");
    }
    Ok(())
}

/// A random password for accounts created without one (first admin, CLI resets): 24 characters
/// of base64url, 144 bits.
pub fn random_password() -> String {
    use base64::Engine as _;
    loop {
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>());
        // A random draw failing the rule is astronomically rare; drawing again keeps the promise
        // that generated passwords always pass it.
        if validate_new_password("password", &p, "").is_ok() {
            return p;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The pool

/// Sizes of the pool, from `[password_hash_*]` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolConfig {
    /// Argon2 runs at once; each holds one 19 MiB block array for the life of the process.
    pub workers: usize,
    /// Runs waiting for a worker, beyond which requests are refused at once.
    pub queue: usize,
    /// Places (running or waiting) one source address (IPv6: its /64) may hold.
    pub per_source: usize,
    /// Longest a run waits for a worker before it is dropped and refused.
    pub wait: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(1, 4),
            queue: 32,
            per_source: 4,
            wait: Duration::from_secs(5),
        }
    }
}

impl PoolConfig {
    pub fn from_config(c: &Config) -> PoolConfig {
        PoolConfig {
            workers: c.password_hash_workers,
            queue: c.password_hash_queue,
            per_source: c.password_hash_per_source,
            wait: Duration::from_secs(c.password_hash_wait_secs),
        }
    }
}

enum Work {
    Hash(String),
    Verify { password: String, phc: String },
}

enum Done {
    Hashed(Result<String, String>),
    Verified(bool),
    /// Waited past the deadline; not run.
    Expired,
}

struct Job {
    work: Work,
    deadline: Instant,
    reply: oneshot::Sender<Done>,
    // Held until the worker is done with the job, so a caller that gave up (client gone) still
    // occupies its place while its job is queued or running.
    _slot: OwnedSemaphorePermit,
    _source: Option<SourceGuard>,
}

struct SourceGuard {
    key: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// Fixed Argon2 workers with a bounded, deadline-limited queue and a per-source share.
pub struct HashPool {
    cfg: PoolConfig,
    slots: Arc<Semaphore>,
    per_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
    tx: Mutex<mpsc::SyncSender<Job>>,
}

/// The source key: an IPv4 address, or the /64 of an IPv6 address (one host usually holds a
/// whole /64, so counting single addresses would give it billions of shares).
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// 503 `busy`: the pool is full or the wait ran out. Handlers add `Retry-After` ([`retry_after`]).
pub fn busy() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "too many password checks are running; try again in a moment",
    )
}

/// Turns an error into a response, adding `Retry-After` to 503 `busy`.
pub fn retry_after(e: ApiError) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let busy = e.status == StatusCode::SERVICE_UNAVAILABLE;
    let mut res = e.into_response();
    if busy {
        res.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(RETRY_AFTER_SECS),
        );
    }
    res
}

impl HashPool {
    pub fn new(cfg: PoolConfig) -> HashPool {
        let cfg = PoolConfig {
            workers: cfg.workers.max(1),
            per_source: cfg.per_source.max(1),
            ..cfg
        };
        let total = cfg.workers + cfg.queue;
        let (tx, rx) = mpsc::sync_channel::<Job>(total);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..cfg.workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(rx))
                .expect("spawning an Argon2 worker thread");
        }
        HashPool {
            cfg,
            slots: Arc::new(Semaphore::new(total)),
            per_source: Arc::new(Mutex::new(HashMap::new())),
            tx: Mutex::new(tx),
        }
    }

    pub fn config(&self) -> PoolConfig {
        self.cfg
    }

    async fn run(&self, source: Option<IpAddr>, work: Work) -> Result<Done, ApiError> {
        let guard = match source {
            None => None,
            Some(ip) => {
                let key = source_key(ip);
                let mut m = self.per_source.lock().unwrap_or_else(|e| e.into_inner());
                let n = m.entry(key).or_insert(0);
                if *n >= self.cfg.per_source {
                    return Err(busy());
                }
                *n += 1;
                Some(SourceGuard {
                    key,
                    counts: self.per_source.clone(),
                })
            }
        };
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| busy())?;
        let (reply, rx) = oneshot::channel();
        let job = Job {
            work,
            deadline: Instant::now() + self.cfg.wait,
            reply,
            _slot: slot,
            _source: guard,
        };
        // Never blocks: the channel holds as many jobs as there are slots.
        self.tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_send(job)
            .map_err(|_| busy())?;
        match rx.await {
            Ok(Done::Expired) => Err(busy()),
            Ok(d) => Ok(d),
            Err(_) => Err(ApiError::internal("an Argon2 worker dropped a job")),
        }
    }

    /// Argon2id PHC string (`$argon2id$v=19$…`) with a random salt.
    pub async fn hash(&self, source: Option<IpAddr>, password: &str) -> Result<String, ApiError> {
        if password.len() > MAX_PASSWORD_LEN {
            return Err(ApiError::invalid_body(format!(
                "password: must be at most {MAX_PASSWORD_LEN} bytes"
            )));
        }
        match self.run(source, Work::Hash(password.to_string())).await? {
            Done::Hashed(r) => r.map_err(|e| ApiError::internal(format!("password hashing: {e}"))),
            _ => Err(ApiError::internal("unexpected Argon2 answer")),
        }
    }

    /// Whether `password` matches the PHC string. A malformed stored hash is a mismatch; a
    /// full pool is an error (the caller must not take it for a wrong password).
    pub async fn verify(
        &self,
        source: Option<IpAddr>,
        password: &str,
        phc: &str,
    ) -> Result<bool, ApiError> {
        let work = Work::Verify {
            password: password.to_string(),
            phc: phc.to_string(),
        };
        match self.run(source, work).await? {
            Done::Verified(ok) => Ok(ok),
            _ => Err(ApiError::internal("unexpected Argon2 answer")),
        }
    }

    /// Spends the same work as a real check (for unknown users and refused attempts), so the
    /// answer's timing does not tell them apart.
    pub async fn verify_dummy(
        &self,
        source: Option<IpAddr>,
        password: &str,
    ) -> Result<(), ApiError> {
        static DUMMY: OnceLock<String> = OnceLock::new();
        let phc = match DUMMY.get() {
            Some(p) => p.clone(),
            None => {
                let p = self.hash(None, &super::secret::random_secret()).await?;
                DUMMY.get_or_init(|| p).clone()
            }
        };
        self.verify(source, password, &phc).await.map(|_| ())
    }
}

static POOL: OnceLock<HashPool> = OnceLock::new();

/// The process's one pool, sized by the first config that asks (the center's own, in `serve`).
pub fn pool(config: &Config) -> &'static HashPool {
    POOL.get_or_init(|| HashPool::new(PoolConfig::from_config(config)))
}

/// [`HashPool::hash`] on the process's pool, for callers without a config (tests' fixtures).
pub async fn hash_password(password: &str) -> Result<String, ApiError> {
    POOL.get_or_init(|| HashPool::new(PoolConfig::default()))
        .hash(None, password)
        .await
}

fn worker(rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let default_blocks = Params::DEFAULT.block_count();
    // Allocated on first use and kept: the same 19 MiB serve every run of this thread.
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        if job.reply.is_closed() {
            continue;
        }
        if Instant::now() > job.deadline {
            let _ = job.reply.send(Done::Expired);
            continue;
        }
        let done = match &job.work {
            Work::Hash(pw) => Done::Hashed(hash_with(&mut blocks, pw.as_bytes())),
            Work::Verify { password, phc } => {
                Done::Verified(verify_with(&mut blocks, password.as_bytes(), phc))
            }
        };
        // Only a stored hash with non-default costs grows the array; do not keep that.
        if blocks.len() > default_blocks {
            blocks = Vec::new();
        }
        let _ = job.reply.send(done);
    }
}

fn argon2_run(
    blocks: &mut Vec<Block>,
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    let need = argon.params().block_count();
    if blocks.len() < need {
        blocks.resize(need, Block::default());
    }
    argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..need])
}

fn hash_with(blocks: &mut Vec<Block>, password: &[u8]) -> Result<String, String> {
    use base64::Engine as _;
    let params = Params::DEFAULT;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_run(blocks, &argon, password, &salt, &mut out).map_err(|e| e.to_string())?;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let phc = format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        b64.encode(salt),
        b64.encode(out)
    );
    // The string must read back as what we meant; a format slip would lock everyone out.
    PasswordHash::new(&phc).map_err(|e| e.to_string())?;
    Ok(phc)
}

fn verify_with(blocks: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&h.salt, &h.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(h.algorithm.as_str()) else {
        return false;
    };
    let version = match h.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&h) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB || params.p_cost() > 16 || params.t_cost() > 16 {
        return false;
    }
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    if argon2_run(blocks, &argon, password, salt, &mut out).is_err() {
        return false;
    }
    // Output's equality is constant-time.
    Output::new(&out).is_ok_and(|o| &o == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, PasswordVerifier};

    fn small_pool(workers: usize, queue: usize, per_source: usize) -> HashPool {
        HashPool::new(PoolConfig {
            workers,
            queue,
            per_source,
            wait: Duration::from_secs(30),
        })
    }

    #[tokio::test]
    async fn hash_round_trip_and_interop_with_the_argon2_crate() {
        let pool = small_pool(1, 4, 4);
        let h = pool.hash(None, "correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            pool.verify(None, "correct horse battery", &h)
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify(None, "correct horse batterY", &h)
                .await
                .unwrap()
        );
        assert!(!pool.verify(None, "x", "not a phc string").await.unwrap());
        assert_ne!(
            h,
            pool.hash(None, "correct horse battery").await.unwrap(),
            "salted"
        );
        // Hashes written before the pool (by the crate's own hasher) still verify, and ours
        // verify with the crate.
        let old = Argon2::default()
            .hash_password(b"an older stored password")
            .unwrap()
            .to_string();
        assert!(
            pool.verify(None, "an older stored password", &old)
                .await
                .unwrap()
        );
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_hash_asking_for_huge_memory_is_a_mismatch() {
        let pool = small_pool(1, 1, 1);
        let huge = "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(!pool.verify(None, "whatever", huge).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_pool_refuses_and_one_source_gets_only_its_share() {
        // One worker, one queued place: of many concurrent runs some are refused with 503.
        let pool = Arc::new(small_pool(1, 1, 8));
        let mut runs = Vec::new();
        for _ in 0..6 {
            let p = pool.clone();
            runs.push(tokio::spawn(async move {
                p.verify_dummy(None, "some guess here").await
            }));
        }
        let mut refused = 0;
        for r in runs {
            if let Err(e) = r.await.unwrap() {
                assert_eq!(
                    (e.status, e.code),
                    (StatusCode::SERVICE_UNAVAILABLE, "busy")
                );
                refused += 1;
            }
        }
        assert!(refused >= 1, "six runs on two places: some must be refused");

        // A source past its share is refused while another source still gets in.
        let pool = Arc::new(small_pool(1, 16, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut runs = Vec::new();
        for _ in 0..6 {
            let p = pool.clone();
            runs.push(tokio::spawn(async move {
                p.verify_dummy(Some(a), "guess").await
            }));
        }
        let other = pool.verify_dummy(Some(b), "legit").await;
        assert!(other.is_ok(), "{other:?}");
        let ok = futures_util::future::join_all(runs)
            .await
            .into_iter()
            .filter(|r| r.as_ref().unwrap().is_ok())
            .count();
        assert!(
            (2..6).contains(&ok),
            "source a got {ok} of 6 with a share of 2"
        );
    }

    #[test]
    fn ipv6_sources_count_per_64() {
        let a = source_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = source_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = source_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            source_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn weak_new_passwords_are_refused_with_field_and_reason() {
        for (pw, why) in [
            ("short", "at least 12"),
            ("aaaaaaaaaaaa", "repetitive"),
            ("abcabcabcabc", "repetitive"),
            ("aaaaaaaaaaab", "repetitive"),
            ("123456789012", "commonly used"),
            ("234567890123", "sequence"),
            ("qwertyuiopas", "sequence"),
            ("abcdefghijklm", "sequence"),
            ("zyxwvutsrqpo", "sequence"),
            ("Password123!", "commonly used"),
            ("iloveyou2024!!", "commonly used"),
            ("administrator", "commonly used"),
            ("mallory-the-admin", "user name"),
            ("MALLORY-THE-ADMIN2024", "user name"),
        ] {
            let e = validate_new_password("new_password", pw, "mallory-the-admin").unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{pw}");
            assert!(
                e.message.starts_with("new_password: ") && e.message.contains(why),
                "{pw}: {}",
                e.message
            );
        }
        for ok in [
            "twelve chars",
            "correct horse battery staple",
            "a long enough password",
            "e2e-admin-password-0123",
            "mallory-the-admin but longer words",
        ] {
            assert!(
                validate_new_password("password", ok, "mallory-the-admin").is_ok(),
                "{ok}"
            );
        }
        for _ in 0..200 {
            let p = random_password();
            assert!(
                validate_new_password("password", &p, "admin").is_ok(),
                "{p}"
            );
        }
    }
}
