//! Middleware: web servers, databases, caches, application servers and container engines,
//! found by any of three sources — a running process (its executable's name), an installed
//! package, or the service's config file — and, for nginx and apache, the sites they serve.
//!
//! Versions come from packages only: running a binary to ask its version would execute
//! whatever sits at that path, as root.

use std::collections::BTreeMap;

use hostward_proto::inventory::{CollectIssue, Items, Middleware, Package, Port, WebSite};

use super::{Collected, Ctx};

pub fn collect(ctx: &Ctx) -> Collected {
    // Their problems are reported by their own collectors, not again here.
    let packages = match super::software::collect(ctx).items {
        Items::Software(v) => v,
        _ => vec![],
    };
    let ports = match super::ports::collect(ctx).items {
        Items::Ports(v) => v,
        _ => vec![],
    };
    detect(ctx, &packages, &ports)
}

/// The document roots of the sites the host's nginx and apache configs serve, from the configs
/// alone (the malware module watches them in real time).
pub fn web_roots(ctx: &Ctx) -> Vec<String> {
    let mut issues = vec![];
    let mut roots = vec![];
    for name in ["nginx", "apache"] {
        let Some(main) = CONFIGS
            .iter()
            .filter(|(n, _)| *n == name)
            .flat_map(|(_, pattern)| glob(ctx, pattern))
            .find(|p| ctx.path(p).is_file())
        else {
            continue;
        };
        let sites = if name == "nginx" {
            nginx_sites(ctx, Some(&main), &mut issues)
        } else {
            apache_sites(ctx, Some(&main), &mut issues)
        };
        roots.extend(sites.into_iter().filter_map(|s| s.root));
    }
    roots.sort();
    roots.dedup();
    roots
}

/// Config files that show a middleware is installed, in order of preference.
const CONFIGS: &[(&str, &str)] = &[
    ("nginx", "/etc/nginx/nginx.conf"),
    ("nginx", "/usr/local/nginx/conf/nginx.conf"),
    ("apache", "/etc/apache2/apache2.conf"),
    ("apache", "/etc/httpd/conf/httpd.conf"),
    ("postgresql", "/etc/postgresql/*/main/postgresql.conf"),
    ("postgresql", "/var/lib/pgsql/data/postgresql.conf"),
    ("postgresql", "/var/lib/pgsql/*/data/postgresql.conf"),
    ("redis", "/etc/redis/redis.conf"),
    ("redis", "/etc/redis.conf"),
    ("mongodb", "/etc/mongod.conf"),
    ("php-fpm", "/etc/php/*/fpm/php-fpm.conf"),
    ("php-fpm", "/etc/php-fpm.conf"),
    ("docker", "/etc/docker/daemon.json"),
    ("tomcat", "/etc/tomcat*/server.xml"),
];

/// my.cnf ships with the client libraries too (mysql-common, mariadb-common), so it names the
/// server's config but does not on its own show that a server is installed.
const MYSQL_CONFIGS: [&str; 2] = ["/etc/mysql/my.cnf", "/etc/my.cnf"];

/// Detection from processes, `packages` and config files; `ports` gives the listening ports of
/// the processes found.
fn detect(ctx: &Ctx, packages: &[Package], ports: &[Port]) -> Collected {
    let mut issues = vec![];
    let mut found: BTreeMap<&'static str, Middleware> = BTreeMap::new();

    let mut best: BTreeMap<&'static str, ((u8, &str), &Package)> = BTreeMap::new();
    for p in packages {
        if let Some((name, rank)) = classify_package(&p.name) {
            let k = (rank, p.name.as_str());
            if best.get(name).is_none_or(|(b, _)| k < *b) {
                best.insert(name, (k, p));
            }
        }
    }
    for (&name, (_, p)) in &best {
        let m = item(&mut found, name);
        m.package = Some(p.name.clone());
        m.version = Some(p.version.clone());
    }

    let procs = processes(ctx);
    for p in &procs {
        // MariaDB still ships a `mysqld`; its package tells them apart.
        let name =
            if p.kind == "mysql" && best.contains_key("mariadb") && !best.contains_key("mysql") {
                "mariadb"
            } else {
                p.kind
            };
        let m = item(&mut found, name);
        m.pids.push(p.pid);
        m.exe.get_or_insert_with(|| p.exe.clone());
        if let Some(base) = &p.catalina_base {
            let conf = format!("{}/conf/server.xml", base.trim_end_matches('/'));
            if m.config_path.is_none() && ctx.path(&conf).is_file() {
                m.config_path = Some(conf);
            }
        }
    }

    for &(name, pattern) in CONFIGS {
        if let Some(path) = glob(ctx, pattern)
            .into_iter()
            .find(|p| ctx.path(p).is_file())
        {
            item(&mut found, name).config_path.get_or_insert(path);
        }
    }
    if let Some(path) = MYSQL_CONFIGS.iter().find(|p| ctx.path(p).is_file()) {
        for name in ["mariadb", "mysql"] {
            if let Some(m) = found.get_mut(name) {
                m.config_path.get_or_insert_with(|| path.to_string());
            }
        }
    }

    for m in found.values_mut() {
        m.pids.sort_unstable();
        m.pids.dedup();
        m.running = !m.pids.is_empty();
        m.listening_ports = ports
            .iter()
            .filter(|p| p.pid.is_some_and(|pid| m.pids.contains(&pid)))
            .map(|p| p.port)
            .collect();
        m.listening_ports.sort_unstable();
        m.listening_ports.dedup();
    }
    if let Some(m) = found.get_mut("nginx") {
        m.sites = nginx_sites(ctx, m.config_path.as_deref(), &mut issues);
    }
    if let Some(m) = found.get_mut("apache") {
        m.sites = apache_sites(ctx, m.config_path.as_deref(), &mut issues);
    }
    Collected {
        items: Items::Middleware(found.into_values().collect()),
        issues,
    }
}

fn item<'m>(
    found: &'m mut BTreeMap<&'static str, Middleware>,
    name: &'static str,
) -> &'m mut Middleware {
    found.entry(name).or_insert_with(|| Middleware {
        name: name.to_string(),
        version: None,
        package: None,
        exe: None,
        config_path: None,
        running: false,
        pids: vec![],
        listening_ports: vec![],
        sites: vec![],
    })
}

/// Middleware a package installs, with a rank: of several matching packages the lowest rank
/// gives the version (the server package over the metapackage that pulls it in).
fn classify_package(name: &str) -> Option<(&'static str, u8)> {
    let n = name.to_ascii_lowercase();
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
    Some(match n.as_str() {
        "nginx" | "nginx-plus" => ("nginx", 0),
        "nginx-core" | "nginx-full" | "nginx-light" | "nginx-extras" | "nginx-mainline" => {
            ("nginx", 1)
        }
        "apache2" | "httpd" => ("apache", 0),
        "apache2-bin" => ("apache", 1),
        "mysql-server" | "mysql-community-server" => ("mysql", 0),
        s if s.starts_with("mysql-server-") => ("mysql", 1),
        "mariadb-server" => ("mariadb", 0),
        s if s.starts_with("mariadb-server-") => ("mariadb", 1),
        "postgresql-server" => ("postgresql", 0),
        s if s.strip_prefix("postgresql-").is_some_and(digits) => ("postgresql", 0),
        s if s
            .strip_prefix("postgresql")
            .and_then(|v| v.strip_suffix("-server"))
            .is_some_and(digits) =>
        {
            ("postgresql", 0)
        }
        "postgresql" => ("postgresql", 1),
        "redis-server" => ("redis", 0),
        "redis" => ("redis", 1),
        "mongodb-org-server" | "mongodb-server" => ("mongodb", 0),
        "mongodb" => ("mongodb", 1),
        s if s
            .strip_prefix("php")
            .and_then(|v| v.strip_suffix("-fpm"))
            .is_some_and(digits) =>
        {
            ("php-fpm", 0)
        }
        "php-fpm" => ("php-fpm", 1),
        "docker-ce" | "docker.io" | "docker-engine" | "moby-engine" => ("docker", 0),
        "docker" => ("docker", 1),
        s if s
            .strip_prefix("tomcat")
            .is_some_and(|v| v.is_empty() || digits(v)) =>
        {
            ("tomcat", 0)
        }
        _ => return None,
    })
}

/// Middleware an executable is, by file name; java needs its arguments to be tomcat.
fn classify_exe(name: &str, args: &[String]) -> Option<&'static str> {
    Some(match name {
        "nginx" => "nginx",
        "apache2" | "httpd" => "apache",
        "mysqld" => "mysql",
        "mariadbd" => "mariadb",
        "postgres" | "postmaster" => "postgresql",
        "redis-server" => "redis",
        "mongod" => "mongodb",
        "dockerd" => "docker",
        "java"
            if args
                .iter()
                .any(|a| a.to_ascii_lowercase().contains("catalina")) =>
        {
            "tomcat"
        }
        n if n.starts_with("php-fpm") => "php-fpm",
        _ => return None,
    })
}

struct Proc {
    pid: u32,
    kind: &'static str,
    /// As the kernel reports it, ` (deleted)` included.
    exe: String,
    /// Tomcat's `-Dcatalina.base` (or `.home`), where its conf/server.xml is.
    catalina_base: Option<String>,
}

/// Middleware processes under <root>/proc, by pid. Processes vanish while we look, and kernel
/// threads have no exe: both are skipped without an issue.
fn processes(ctx: &Ctx) -> Vec<Proc> {
    let Ok(rd) = std::fs::read_dir(ctx.path("/proc")) else {
        return vec![];
    };
    let mut procs: Vec<Proc> = rd
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let exe = std::fs::read_link(e.path().join("exe")).ok()?;
            let exe = exe.to_string_lossy().into_owned();
            let name = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
            let name = name.rsplit('/').next().unwrap_or_default();
            let args: Vec<String> = if name == "java" {
                std::fs::read(e.path().join("cmdline"))
                    .unwrap_or_default()
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            } else {
                vec![]
            };
            let kind = classify_exe(name, &args)?;
            let catalina_base = ["-Dcatalina.base=", "-Dcatalina.home="]
                .iter()
                .find_map(|k| args.iter().find_map(|a| a.strip_prefix(k)))
                .filter(|b| b.starts_with('/'))
                .map(str::to_string);
            Some(Proc {
                pid,
                kind,
                exe,
                catalina_base,
            })
        })
        .collect();
    procs.sort_by_key(|p| p.pid);
    procs
}

/// Host paths matching a host-path pattern with `*` and `?` in any component, sorted per
/// component as glob(3) sorts them. Hidden names match only a pattern starting with a dot.
fn glob(ctx: &Ctx, pattern: &str) -> Vec<String> {
    let mut paths = vec![String::new()];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        if !comp.contains(['*', '?']) {
            for p in &mut paths {
                p.push('/');
                p.push_str(comp);
            }
            continue;
        }
        let mut next = vec![];
        for p in &paths {
            let Ok(rd) = std::fs::read_dir(ctx.path(p)) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| wildcard(comp, n) && (comp.starts_with('.') || !n.starts_with('.')))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| format!("{p}/{n}")));
        }
        paths = next;
    }
    paths.retain(|p| !p.is_empty() && ctx.path(p).exists());
    paths
}

/// Shell-style match of one name: `*` any run, `?` one character.
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = name.chars().collect();
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Port of a `listen` argument or VirtualHost address: `80`, `1.2.3.4:8080`, `[::]:443`;
/// an address without a port means 80. `None` for unix sockets and garbage.
fn listen_port(arg: &str) -> Option<u16> {
    if arg.starts_with("unix:") {
        return None;
    }
    if arg.chars().all(|c| c.is_ascii_digit()) {
        return arg.parse().ok();
    }
    let port = match arg.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.1.strip_prefix(':'),
        None => arg.rsplit_once(':').map(|(_, p)| p),
    };
    match port {
        Some(p) => p.parse().ok(),
        None => Some(80),
    }
}

/// A site while its block is being read.
struct Draft {
    file: String,
    names: Vec<String>,
    root: Option<String>,
    ports: Vec<u16>,
}

impl Draft {
    fn new(file: &str) -> Self {
        Draft {
            file: file.to_string(),
            names: vec![],
            root: None,
            ports: vec![],
        }
    }

    fn finish(mut self) -> WebSite {
        if self.ports.is_empty() {
            self.ports.push(80);
        }
        self.ports.sort_unstable();
        self.ports.dedup();
        let mut names: Vec<String> = vec![];
        for n in self.names {
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
        WebSite {
            server_names: names,
            root: self.root,
            ports: self.ports,
            config_file: self.file,
        }
    }
}

/// How deep includes may nest; deeper is a loop in all but name.
const MAX_INCLUDE_DEPTH: usize = 16;

// ---------------------------------------------------------------------------------------------
// nginx

fn nginx_sites(ctx: &Ctx, main: Option<&str>, issues: &mut Vec<CollectIssue>) -> Vec<WebSite> {
    let mut p = Nginx {
        ctx,
        prefix: "/etc/nginx".into(),
        stack: vec![],
        servers: vec![],
        sites: vec![],
        issues: vec![],
        chain: vec![],
    };
    match main.filter(|m| m.ends_with("nginx.conf")) {
        Some(main) => {
            p.prefix = main.rsplit_once('/').map(|(d, _)| d).unwrap_or("/").into();
            p.parse_file(main);
        }
        // Without nginx.conf the usual site files are still what an nginx here would serve.
        None => {
            p.stack.push(("http".into(), 0));
            for pattern in ["/etc/nginx/conf.d/*.conf", "/etc/nginx/sites-enabled/*"] {
                for f in glob(ctx, pattern) {
                    if ctx.path(&f).is_file() {
                        p.parse_file(&f);
                    }
                }
            }
        }
    }
    issues.append(&mut p.issues);
    p.sites
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
}

/// Tokens of an nginx config with their 1-based lines; `Err(line)` when a quoted string
/// opened at `line` never closes (the tokens before it are still returned).
fn nginx_tokens(text: &str) -> (Vec<(Tok, usize)>, Result<(), usize>) {
    let mut toks = vec![];
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut word = String::new();
    let mut word_line = 1;
    let flush = |word: &mut String, toks: &mut Vec<(Tok, usize)>, at: usize| {
        if !word.is_empty() {
            toks.push((Tok::Word(std::mem::take(word)), at));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                flush(&mut word, &mut toks, word_line);
                line += 1;
            }
            c if c.is_whitespace() => flush(&mut word, &mut toks, word_line),
            '#' if word.is_empty() => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            // `${var}` inside a word is a variable, not a block.
            '{' if word.ends_with('$') => {
                word.push('{');
                for d in chars.by_ref() {
                    if d == '\n' {
                        line += 1;
                    }
                    word.push(d);
                    if d == '}' {
                        break;
                    }
                }
            }
            ';' | '{' | '}' => {
                flush(&mut word, &mut toks, word_line);
                let t = match c {
                    ';' => Tok::Semi,
                    '{' => Tok::Open,
                    _ => Tok::Close,
                };
                toks.push((t, line));
            }
            '"' | '\'' if word.is_empty() => {
                let start = line;
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\n' {
                        line += 1;
                    }
                    if d == '\\' {
                        if let Some(e) = chars.next() {
                            if e == '\n' {
                                line += 1;
                            }
                            word.push(e);
                        }
                    } else if d == c {
                        closed = true;
                        break;
                    } else {
                        word.push(d);
                    }
                }
                if !closed {
                    return (toks, Err(start));
                }
                toks.push((Tok::Word(std::mem::take(&mut word)), start));
            }
            c => {
                if word.is_empty() {
                    word_line = line;
                }
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut toks, word_line);
    (toks, Ok(()))
}

struct Nginx<'c> {
    ctx: &'c Ctx<'c>,
    /// Directory of nginx.conf: relative includes are relative to it.
    prefix: String,
    /// Enclosing blocks (name, line), across included files.
    stack: Vec<(String, usize)>,
    /// Open `server` blocks with the stack depth of their directives.
    servers: Vec<(usize, Draft)>,
    sites: Vec<WebSite>,
    issues: Vec<CollectIssue>,
    /// Files being parsed, outermost first, to stop include loops.
    chain: Vec<String>,
}

impl Nginx<'_> {
    fn issue(&mut self, file: &str, line: usize, msg: impl Into<String>) {
        let line = u32::try_from(line).unwrap_or(u32::MAX);
        self.issues.push(self.ctx.issue(file, Some(line), msg));
    }

    // nginx parses each file on its own: its braces must balance within it.
    fn parse_file(&mut self, file: &str) {
        if self.chain.len() >= MAX_INCLUDE_DEPTH || self.chain.iter().any(|f| f == file) {
            let parent = self.chain.last().cloned().unwrap_or_default();
            self.issues.push(
                self.ctx
                    .issue(&parent, None, format!("include loop at {file}")),
            );
            return;
        }
        let Some(text) = self.ctx.read_text(file, &mut self.issues) else {
            return;
        };
        self.chain.push(file.to_string());
        let (toks, end) = nginx_tokens(&text);
        if let Err(line) = end {
            self.issue(file, line, "unterminated quoted string");
        }
        let base = self.stack.len();
        let mut words: Vec<String> = vec![];
        let mut at = 0;
        for (tok, line) in toks {
            match tok {
                Tok::Word(w) => {
                    if words.is_empty() {
                        at = line;
                    }
                    words.push(w);
                }
                Tok::Semi => self.directive(file, &std::mem::take(&mut words), at),
                Tok::Open => {
                    let name = words.first().cloned().unwrap_or_default();
                    words.clear();
                    let in_http = self.stack.last().is_some_and(|(b, _)| b == "http");
                    self.stack.push((name.clone(), line));
                    if name == "server" && in_http {
                        self.servers.push((self.stack.len(), Draft::new(file)));
                    }
                }
                Tok::Close => {
                    if !words.is_empty() {
                        self.issue(file, at, "directive not ended with ;");
                        words.clear();
                    }
                    if self.stack.len() > base {
                        self.close_block();
                    } else {
                        self.issue(file, line, "unexpected }");
                    }
                }
            }
        }
        if !words.is_empty() {
            self.issue(file, at, "unexpected end of file, expecting ;");
        }
        // Sites of unclosed blocks are kept: what was read of them is real.
        while self.stack.len() > base {
            let (name, line) = self.stack.last().cloned().unwrap_or_default();
            self.issue(file, line, format!("block `{name}` is not closed"));
            self.close_block();
        }
        self.chain.pop();
    }

    fn close_block(&mut self) {
        if self
            .servers
            .last()
            .is_some_and(|(depth, _)| *depth == self.stack.len())
            && let Some((_, draft)) = self.servers.pop()
        {
            self.sites.push(draft.finish());
        }
        self.stack.pop();
    }

    fn directive(&mut self, file: &str, words: &[String], line: usize) {
        let Some((name, args)) = words.split_first() else {
            return;
        };
        if name == "include" {
            for pattern in args {
                self.include(file, line, pattern);
            }
            return;
        }
        let depth = self.stack.len();
        let Some((_, site)) = self.servers.last_mut().filter(|(d, _)| *d == depth) else {
            return;
        };
        match name.as_str() {
            "server_name" => site.names.extend(args.iter().cloned()),
            "root" => site.root = args.first().cloned(),
            "listen" => match args.first().map(|a| listen_port(a)) {
                Some(Some(port)) => site.ports.push(port),
                Some(None) if args[0].starts_with("unix:") => {}
                _ => self.issue(file, line, "listen without a valid port"),
            },
            _ => {}
        }
    }

    fn include(&mut self, file: &str, line: usize, pattern: &str) {
        let path = if pattern.starts_with('/') {
            pattern.to_string()
        } else {
            format!("{}/{pattern}", self.prefix.trim_end_matches('/'))
        };
        if path.contains(['*', '?']) {
            for f in glob(self.ctx, &path) {
                if self.ctx.path(&f).is_file() {
                    self.parse_file(&f);
                }
            }
        } else if self.ctx.path(&path).is_file() {
            self.parse_file(&path);
        } else {
            self.issue(file, line, format!("included file {path} not found"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// apache

fn apache_sites(ctx: &Ctx, main: Option<&str>, issues: &mut Vec<CollectIssue>) -> Vec<WebSite> {
    let server_root = match main {
        Some("/etc/httpd/conf/httpd.conf") => "/etc/httpd",
        _ => "/etc/apache2",
    };
    let mut p = Apache {
        ctx,
        server_root: server_root.into(),
        vhost: None,
        sites: vec![],
        issues: vec![],
        chain: vec![],
    };
    match main {
        Some(main) => p.parse_file(main),
        None => {
            for pattern in ["/etc/apache2/sites-enabled/*", "/etc/httpd/conf.d/*.conf"] {
                for f in glob(ctx, pattern) {
                    if ctx.path(&f).is_file() {
                        p.parse_file(&f);
                    }
                }
            }
        }
    }
    issues.append(&mut p.issues);
    p.sites
}

struct Apache<'c> {
    ctx: &'c Ctx<'c>,
    /// Relative includes are relative to it.
    server_root: String,
    vhost: Option<Draft>,
    sites: Vec<WebSite>,
    issues: Vec<CollectIssue>,
    chain: Vec<String>,
}

/// Arguments of an apache directive: whitespace-separated, double quotes group and are removed.
fn apache_words(s: &str) -> Vec<String> {
    let mut words = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

impl Apache<'_> {
    fn issue(&mut self, file: &str, line: usize, msg: impl Into<String>) {
        let line = u32::try_from(line).unwrap_or(u32::MAX);
        self.issues.push(self.ctx.issue(file, Some(line), msg));
    }

    // Like httpd, each file's sections must close within the file.
    fn parse_file(&mut self, file: &str) {
        if self.chain.len() >= MAX_INCLUDE_DEPTH || self.chain.iter().any(|f| f == file) {
            let parent = self.chain.last().cloned().unwrap_or_default();
            self.issues.push(
                self.ctx
                    .issue(&parent, None, format!("include loop at {file}")),
            );
            return;
        }
        let Some(text) = self.ctx.read_text(file, &mut self.issues) else {
            return;
        };
        self.chain.push(file.to_string());
        let mut sections: Vec<(String, usize)> = vec![];
        let mut logical = String::new();
        let mut start = 0;
        for (i, raw) in text.lines().enumerate() {
            if logical.is_empty() {
                start = i + 1;
            }
            // A trailing backslash continues the directive on the next line.
            if let Some(cont) = raw.strip_suffix('\\') {
                logical.push_str(cont);
                logical.push(' ');
                continue;
            }
            logical.push_str(raw);
            let line = std::mem::take(&mut logical);
            self.line(file, line.trim(), start, &mut sections);
        }
        if !logical.is_empty() {
            self.line(file, logical.trim(), start, &mut sections);
        }
        while let Some((name, line)) = sections.pop() {
            self.issue(file, line, format!("<{name}> is not closed"));
            if name.eq_ignore_ascii_case("virtualhost") {
                self.close_vhost();
            }
        }
        self.chain.pop();
    }

    fn line(&mut self, file: &str, l: &str, at: usize, sections: &mut Vec<(String, usize)>) {
        if l.is_empty() || l.starts_with('#') {
            return;
        }
        if let Some(close) = l.strip_prefix("</") {
            let name = close.trim_end().trim_end_matches('>').trim();
            match sections.last() {
                Some((open, _)) if open.eq_ignore_ascii_case(name) => {
                    if name.eq_ignore_ascii_case("virtualhost") {
                        self.close_vhost();
                    }
                    sections.pop();
                }
                Some((open, opened)) => {
                    let msg = format!("</{name}> does not close <{open}> of line {opened}");
                    self.issue(file, at, msg);
                }
                None => self.issue(file, at, format!("unexpected </{name}>")),
            }
            return;
        }
        if let Some(open) = l.strip_prefix('<') {
            let Some(inner) = open.trim_end().strip_suffix('>') else {
                self.issue(file, at, "section tag not closed with >");
                return;
            };
            let words = apache_words(inner);
            let Some((name, args)) = words.split_first() else {
                self.issue(file, at, "empty section tag");
                return;
            };
            sections.push((name.clone(), at));
            if name.eq_ignore_ascii_case("virtualhost") {
                if self.vhost.is_some() {
                    self.issue(file, at, "VirtualHost inside a VirtualHost");
                    self.close_vhost();
                }
                let mut site = Draft::new(file);
                site.ports = args.iter().filter_map(|a| listen_port(a)).collect();
                self.vhost = Some(site);
            }
            return;
        }
        let words = apache_words(l);
        let Some((name, args)) = words.split_first() else {
            return;
        };
        let name = name.to_ascii_lowercase();
        if name == "include" || name == "includeoptional" {
            for pattern in args {
                self.include(file, at, pattern, name == "includeoptional");
            }
            return;
        }
        let Some(site) = self.vhost.as_mut() else {
            return;
        };
        match name.as_str() {
            "servername" => {
                if let Some(n) = args.first() {
                    site.names.insert(0, n.clone());
                }
            }
            "serveralias" => site.names.extend(args.iter().cloned()),
            "documentroot" => site.root = args.first().cloned(),
            _ => {}
        }
    }

    fn close_vhost(&mut self) {
        if let Some(site) = self.vhost.take() {
            self.sites.push(site.finish());
        }
    }

    fn include(&mut self, file: &str, line: usize, pattern: &str, optional: bool) {
        let mut path = if pattern.starts_with('/') {
            pattern.to_string()
        } else {
            format!("{}/{pattern}", self.server_root.trim_end_matches('/'))
        };
        // Including a directory includes every file in it.
        if self.ctx.path(&path).is_dir() {
            path = format!("{}/*", path.trim_end_matches('/'));
        }
        if path.contains(['*', '?']) {
            for f in glob(self.ctx, &path) {
                if self.ctx.path(&f).is_file() {
                    self.parse_file(&f);
                }
            }
        } else if self.ctx.path(&path).is_file() {
            self.parse_file(&path);
        } else if !optional {
            self.issue(file, line, format!("included file {path} not found"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use hostward_proto::inventory::{InventoryPolicy, PortRisk};

    use super::*;
    use crate::inventory::collect::HashCache;

    fn write(root: &Path, host: &str, content: impl AsRef<[u8]>) {
        let p = root.join(host.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn proc(root: &Path, pid: u32, exe: &str, cmdline: &[u8]) {
        let dir = root.join(format!("proc/{pid}"));
        std::fs::create_dir_all(&dir).unwrap();
        symlink(exe, dir.join("exe")).unwrap();
        std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    }

    fn parts() -> (InventoryPolicy, HashCache) {
        (InventoryPolicy::default(), HashCache::default())
    }

    fn pkg(name: &str, version: &str) -> Package {
        Package {
            manager: "dpkg".into(),
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            source: None,
            source_version: None,
            vendor: None,
            install_time: None,
        }
    }

    fn port(pid: Option<u32>, port: u16) -> Port {
        Port {
            protocol: "tcp".into(),
            family: "v4".into(),
            address: "0.0.0.0".into(),
            port,
            state: "listen".into(),
            pid,
            program: None,
            risk: PortRisk::Unknown,
            risk_reason: None,
        }
    }

    fn middleware(c: Collected) -> (Vec<Middleware>, Vec<CollectIssue>) {
        match c.items {
            Items::Middleware(v) => (v, c.issues),
            other => panic!("wrong kind {:?}", other.kind()),
        }
    }

    fn site(file: &str, names: &[&str], root: Option<&str>, ports: &[u16]) -> WebSite {
        WebSite {
            server_names: names.iter().map(|s| s.to_string()).collect(),
            root: root.map(str::to_string),
            ports: ports.to_vec(),
            config_file: file.into(),
        }
    }

    fn lines(issues: &[CollectIssue]) -> Vec<(&str, Option<u32>)> {
        issues.iter().map(|i| (i.file.as_str(), i.line)).collect()
    }

    #[test]
    fn executables_and_packages_classify() {
        let no = &[][..];
        assert_eq!(classify_exe("nginx", no), Some("nginx"));
        assert_eq!(classify_exe("httpd", no), Some("apache"));
        assert_eq!(classify_exe("php-fpm8.2", no), Some("php-fpm"));
        assert_eq!(classify_exe("java", no), None);
        let tomcat = [
            "java".into(),
            "org.apache.catalina.startup.Bootstrap".into(),
        ];
        assert_eq!(classify_exe("java", &tomcat), Some("tomcat"));
        assert_eq!(classify_exe("nginx-debug-helper", no), None);

        for (name, want) in [
            ("nginx-core", Some(("nginx", 1))),
            ("apache2", Some(("apache", 0))),
            ("tomcat10", Some(("tomcat", 0))),
            ("tomcat10-common", None),
            ("mysql-server-8.0", Some(("mysql", 1))),
            ("MariaDB-server", Some(("mariadb", 0))),
            ("mariadb-client", None),
            ("postgresql-15", Some(("postgresql", 0))),
            ("postgresql16-server", Some(("postgresql", 0))),
            ("postgresql-client-15", None),
            ("postgresql-common", None),
            ("redis-tools", None),
            ("mongodb-org-server", Some(("mongodb", 0))),
            ("php8.2-fpm", Some(("php-fpm", 0))),
            ("php8.2-cli", None),
            ("docker.io", Some(("docker", 0))),
            ("docker-ce-cli", None),
        ] {
            assert_eq!(classify_package(name), want, "{name}");
        }
    }

    #[test]
    fn listen_ports_and_wildcards_parse() {
        assert_eq!(listen_port("8080"), Some(8080));
        assert_eq!(listen_port("127.0.0.1:443"), Some(443));
        assert_eq!(listen_port("[::]:80"), Some(80));
        assert_eq!(listen_port("[::1]"), Some(80));
        assert_eq!(listen_port("*:8443"), Some(8443));
        assert_eq!(listen_port("*"), Some(80));
        assert_eq!(listen_port("localhost"), Some(80));
        assert_eq!(listen_port("unix:/run/x.sock"), None);
        assert_eq!(listen_port("99999"), None);
        assert_eq!(listen_port("1.2.3.4:x"), None);

        assert!(wildcard("*.conf", "a.conf"));
        assert!(wildcard("*.conf", ".conf"));
        assert!(!wildcard("*.conf", "a.conf.bak"));
        assert!(wildcard("tomcat*", "tomcat9"));
        assert!(wildcard("a*b*c", "aXbYbc"));
        assert!(wildcard("?é*", "xé"));
        assert!(!wildcard("?", ""));
        assert!(wildcard("*", ""));
    }

    #[test]
    fn nginx_sites_follow_includes_and_survive_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r,
            "/etc/nginx/nginx.conf",
            r#"user www-data;
worker_processes auto; # a comment with { a brace
events { worker_connections 768; }
http {
    include mime.types;
    log_format main '$remote_addr "$request" {x}';
    include /etc/nginx/conf.d/*.conf;
    include sites-enabled/*;
    upstream app { server 127.0.0.1:9000; }
    server {
        listen 8080;
        server_name inline.example;
        location / { root /not/this; }
        root /srv/inline;
    }
}
stream { server { listen 5353 udp; } }
"#,
        );
        write(r, "/etc/nginx/mime.types", "types { text/html html; }\n");
        write(
            r,
            "/etc/nginx/sites-enabled/default",
            "server {\n\tlisten 80 default_server;\n\tlisten [::]:80 default_server;\n\
             \tlisten 127.0.0.1:443 ssl;\n\tserver_name \"example.com\" www.example.com; # x\n\
             \troot /var/www/html;\n\tlocation ~ \\.php$ { fastcgi_pass unix:/run/php.sock; }\n\
             \treturn 301 https://${host}$request_uri;\n}\nserver { server_name _; }\n",
        );
        write(r, "/etc/nginx/sites-enabled/.hidden", "garbage {{{\n");
        write(
            r,
            "/etc/nginx/conf.d/broken.conf",
            "server {\n    listen 81;\n    server_name broken.example;\n    location / {\n        root /x;\n",
        );
        write(
            r,
            "/etc/nginx/conf.d/extra.conf",
            "}\nserver { listen 82; include /etc/nginx/missing.conf; }\n",
        );
        let mut issues = vec![];
        let (policy, hashes) = parts();
        let c = Ctx {
            root: r,
            policy: &policy,
            hashes: &hashes,
        };
        let sites = nginx_sites(&c, Some("/etc/nginx/nginx.conf"), &mut issues);
        assert_eq!(
            sites,
            [
                site(
                    "/etc/nginx/conf.d/broken.conf",
                    &["broken.example"],
                    None,
                    &[81]
                ),
                site("/etc/nginx/conf.d/extra.conf", &[], None, &[82]),
                site(
                    "/etc/nginx/sites-enabled/default",
                    &["example.com", "www.example.com"],
                    Some("/var/www/html"),
                    &[80, 443]
                ),
                site("/etc/nginx/sites-enabled/default", &["_"], None, &[80]),
                site(
                    "/etc/nginx/nginx.conf",
                    &["inline.example"],
                    Some("/srv/inline"),
                    &[8080]
                ),
            ]
        );
        assert_eq!(
            lines(&issues),
            [
                ("/etc/nginx/conf.d/broken.conf", Some(4)),
                ("/etc/nginx/conf.d/broken.conf", Some(1)),
                ("/etc/nginx/conf.d/extra.conf", Some(1)),
                ("/etc/nginx/conf.d/extra.conf", Some(2)),
            ],
            "{issues:?}"
        );
        assert!(issues[2].message.contains("unexpected }"));
        assert!(issues[3].message.contains("missing.conf"));
        // What the malware module watches: the roots alone, from the config found.
        assert_eq!(web_roots(&c), ["/srv/inline", "/var/www/html"]);
    }

    #[test]
    fn nginx_tokens_handle_quotes_comments_and_variables() {
        let (toks, end) = nginx_tokens("a \"b c\\\" d\" 'e;f' ${x}y; # z {\n}");
        assert_eq!(end, Ok(()));
        let words: Vec<&Tok> = toks.iter().map(|(t, _)| t).collect();
        assert_eq!(
            words,
            [
                &Tok::Word("a".into()),
                &Tok::Word("b c\" d".into()),
                &Tok::Word("e;f".into()),
                &Tok::Word("${x}y".into()),
                &Tok::Semi,
                &Tok::Close,
            ]
        );
        assert_eq!(toks[5].1, 2);
        let (toks, end) = nginx_tokens("a;\nb \"open\n\n");
        assert_eq!(end, Err(2));
        assert_eq!(toks.len(), 3);
    }

    #[test]
    fn apache_virtual_hosts_follow_includes_and_survive_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r,
            "/etc/apache2/apache2.conf",
            "ServerRoot \"/etc/apache2\"\nInclude ports.conf\nIncludeOptional conf-enabled/*.conf\n\
             IncludeOptional sites-enabled/*.conf\nInclude mods-enabled/missing.load\n\
             <Directory /var/www/>\n    Options Indexes\n</Directory>\n",
        );
        write(
            r,
            "/etc/apache2/ports.conf",
            "Listen 80\n<IfModule ssl_module>\n\tListen 443\n</IfModule>\n",
        );
        write(
            r,
            "/etc/apache2/sites-enabled/000-default.conf",
            r#"<VirtualHost *:80>
    # ServerName commented.example
    ServerAlias www.example.com \
        alt.example.com
    ServerName example.com
    DocumentRoot "/var/www/html"
    <Directory "/var/www/html">
        AllowOverride None
    </Directory>
</VirtualHost>
<IfModule mod_ssl.c>
<virtualhost _default_:443 [::]:8443>
    servername secure.example.com
    DocumentRoot /var/www/secure
</virtualhost>
</IfModule>
"#,
        );
        write(
            r,
            "/etc/apache2/sites-enabled/zz-broken.conf",
            "<VirtualHost *:8080>\n    ServerName half.example.com\n    </Directory>\n",
        );
        let mut issues = vec![];
        let (policy, hashes) = parts();
        let c = Ctx {
            root: r,
            policy: &policy,
            hashes: &hashes,
        };
        let sites = apache_sites(&c, Some("/etc/apache2/apache2.conf"), &mut issues);
        let default = "/etc/apache2/sites-enabled/000-default.conf";
        assert_eq!(
            sites,
            [
                site(
                    default,
                    &["example.com", "www.example.com", "alt.example.com"],
                    Some("/var/www/html"),
                    &[80]
                ),
                site(
                    default,
                    &["secure.example.com"],
                    Some("/var/www/secure"),
                    &[443, 8443]
                ),
                site(
                    "/etc/apache2/sites-enabled/zz-broken.conf",
                    &["half.example.com"],
                    None,
                    &[8080]
                ),
            ]
        );
        assert_eq!(
            lines(&issues),
            [
                ("/etc/apache2/sites-enabled/zz-broken.conf", Some(3)),
                ("/etc/apache2/sites-enabled/zz-broken.conf", Some(1)),
                ("/etc/apache2/apache2.conf", Some(5)),
            ],
            "{issues:?}"
        );
    }

    #[test]
    fn middleware_is_found_by_process_package_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        proc(r, 120, "/usr/sbin/nginx", b"nginx: worker process\0");
        proc(r, 100, "/usr/sbin/nginx", b"nginx: master process\0");
        proc(
            r,
            200,
            "/usr/lib/jvm/java-17/bin/java",
            b"/usr/bin/java\0-Dcatalina.base=/opt/tomcat\0org.apache.catalina.startup.Bootstrap\0start\0",
        );
        proc(
            r,
            201,
            "/usr/lib/jvm/java-17/bin/java",
            b"java\0-jar\0app.jar\0",
        );
        proc(r, 300, "/usr/sbin/mysqld (deleted)", b"/usr/sbin/mysqld\0");
        proc(r, 400, "/usr/bin/bash", b"bash\0");
        std::fs::create_dir_all(r.join("proc/2")).unwrap(); // a kernel thread: no exe
        symlink("100", r.join("proc/self")).unwrap();
        write(r, "/opt/tomcat/conf/server.xml", "<Server/>\n");
        write(r, "/etc/redis/redis.conf", "port 6379\n");
        write(r, "/etc/mysql/my.cnf", "[mysqld]\n");
        write(
            r,
            "/etc/nginx/nginx.conf",
            "http { server { listen 8000; server_name a.example; } }\n",
        );
        let packages = [
            pkg("nginx-core", "1.22.1-9"),
            pkg("nginx", "1.22.1-9"),
            pkg("mariadb-server", "1:10.11.6-0+deb12u1"),
            pkg("mariadb-client", "1:10.11.6-0+deb12u1"),
            pkg("postgresql-client-15", "15.5-0+deb12u1"),
            pkg("docker.io", "20.10.24+dfsg1-1+b3"),
        ];
        let ports = [
            port(Some(100), 8000),
            port(Some(100), 8000),
            port(Some(300), 3306),
            port(None, 22),
            port(Some(201), 9000),
        ];
        let (policy, hashes) = parts();
        let c = Ctx {
            root: r,
            policy: &policy,
            hashes: &hashes,
        };
        let (items, issues) = middleware(detect(&c, &packages, &ports));
        assert!(issues.is_empty(), "{issues:?}");
        let names: Vec<&str> = items.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["docker", "mariadb", "nginx", "redis", "tomcat"]);

        let docker = &items[0];
        assert_eq!(docker.package.as_deref(), Some("docker.io"));
        assert_eq!(docker.version.as_deref(), Some("20.10.24+dfsg1-1+b3"));
        assert!(!docker.running && docker.exe.is_none() && docker.config_path.is_none());

        let maria = &items[1];
        assert_eq!(maria.pids, [300]);
        assert!(maria.running);
        assert_eq!(maria.exe.as_deref(), Some("/usr/sbin/mysqld (deleted)"));
        assert_eq!(maria.version.as_deref(), Some("1:10.11.6-0+deb12u1"));
        assert_eq!(maria.config_path.as_deref(), Some("/etc/mysql/my.cnf"));
        assert_eq!(maria.listening_ports, [3306]);

        let nginx = &items[2];
        assert_eq!(nginx.pids, [100, 120]);
        assert_eq!(nginx.exe.as_deref(), Some("/usr/sbin/nginx"));
        assert_eq!(nginx.package.as_deref(), Some("nginx"));
        assert_eq!(nginx.config_path.as_deref(), Some("/etc/nginx/nginx.conf"));
        assert_eq!(nginx.listening_ports, [8000]);
        assert_eq!(
            nginx.sites,
            [site("/etc/nginx/nginx.conf", &["a.example"], None, &[8000])]
        );

        let redis = &items[3];
        assert!(!redis.running && redis.version.is_none());
        assert_eq!(redis.config_path.as_deref(), Some("/etc/redis/redis.conf"));

        let tomcat = &items[4];
        assert_eq!(tomcat.pids, [200]);
        assert_eq!(
            tomcat.config_path.as_deref(),
            Some("/opt/tomcat/conf/server.xml")
        );
        assert!(tomcat.listening_ports.is_empty());
    }

    #[test]
    fn my_cnf_alone_is_no_database_server() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "/etc/mysql/my.cnf", "[client]\n");
        let (policy, hashes) = parts();
        let c = Ctx {
            root: r,
            policy: &policy,
            hashes: &hashes,
        };
        let (items, _) = middleware(detect(&c, &[pkg("mysql-server-8.0", "8.0.36")], &[]));
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].name, "mysql");
        assert_eq!(items[0].config_path.as_deref(), Some("/etc/mysql/my.cnf"));
        let (items, _) = middleware(detect(&c, &[], &[]));
        assert!(items.is_empty());
    }

    #[test]
    fn collect_reads_processes_and_configs_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        proc(r, 42, "/usr/bin/redis-server", b"redis-server *:6379\0");
        write(r, "/etc/docker/daemon.json", "{}\n");
        let (policy, hashes) = parts();
        let c = Ctx {
            root: r,
            policy: &policy,
            hashes: &hashes,
        };
        let (items, _) = middleware(collect(&c));
        let names: Vec<(&str, bool)> = items.iter().map(|m| (m.name.as_str(), m.running)).collect();
        assert_eq!(names, [("docker", false), ("redis", true)]);
    }
}
