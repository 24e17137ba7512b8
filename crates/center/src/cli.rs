//! Command line of `hostward`. Admin commands open the database directly and go through the same
//! operation functions as the API, as the built-in `system` principal.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::auth::Principal;
use crate::config::ServeArgs;
use crate::state::AppState;
use crate::{api, quickstart, server};

const DEFAULT_DATA_DIR: &str = "/var/lib/hostward";

#[derive(Parser)]
#[command(
    name = "hostward",
    version,
    about = "Hostward protection center: agent gateway, console, REST API and admin CLI."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the protection center: console/API on --listen (8443), agent gateway on --gateway-listen (10180).
    Serve(Box<ServeArgs>),
    /// Quickstart: a center on SQLite in ./hostward-data plus a local agent enrolled to it.
    Up(quickstart::UpArgs),
    /// Manage console users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage projects (tenants).
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Manage enrollment tokens (what agents enroll with).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage API tokens of users.
    #[command(subcommand, name = "api-token")]
    ApiToken(ApiTokenCmd),
    /// Manage servers.
    #[command(subcommand)]
    Server(ServerCmd),
    /// Manage agents.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// The center's certificate authority.
    #[command(subcommand)]
    Ca(CaCmd),
    /// The vulnerability database the center matches servers' software against.
    #[command(subcommand)]
    Vulndb(VulndbCmd),
}

/// Where the center's data lives; the same flags as `serve` (and its config file and env vars).
#[derive(Args, Clone, Default)]
struct DbArgs {
    /// TOML config file of the center.
    #[arg(long, env = "HOSTWARD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The center's data directory (CA, SQLite database).
    #[arg(long, env = "HOSTWARD_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL (`sqlite://PATH` or `postgres://…`). Default: SQLite in the data dir.
    #[arg(
        long,
        env = "HOSTWARD_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
}

impl DbArgs {
    async fn state(&self) -> anyhow::Result<AppState> {
        let args = ServeArgs {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..Default::default()
        };
        server::state(
            args.resolve(&PathBuf::from(DEFAULT_DATA_DIR))?,
            server::Mode::Admin,
        )
        .await
    }
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user with a role in a project.
    Add {
        name: String,
        /// Project the role applies to.
        #[arg(long, default_value = "default")]
        project: String,
        /// Role in the project: admin, operator or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Make the user a superadmin (admin of every project, may manage users).
        #[arg(long)]
        superadmin: bool,
        /// Read the password from standard input (at least 12 characters). Without it a random
        /// password is generated and printed once.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List users and their roles.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set a user's password (read from standard input) and unlock the account.
    Passwd {
        name: String,
        /// Read the password from standard input. Without it a random one is generated and printed.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Delete a user.
    Del {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ProjectCmd {
    /// Create a project.
    Add {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List projects.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create an enrollment token and print it with the one-line install command (shown once).
    Create {
        /// Project the enrolled servers join.
        #[arg(long, default_value = "default")]
        project: String,
        /// A label for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Region label given to servers enrolled with this token.
        #[arg(long, default_value = "")]
        region: String,
        /// Token lifetime in seconds, at most 365 days (default: 7 days).
        #[arg(long)]
        expires_in_secs: Option<i64>,
        /// How many servers the token may enroll (default: no limit within its lifetime).
        #[arg(long)]
        max_uses: Option<i64>,
        /// Only accept enrollments from this source network (repeatable), e.g. 10.0.0.0/8.
        #[arg(long = "allow-cidr")]
        allow_cidrs: Vec<String>,
        /// Print JSON {id, secret, install_command, ca_sha256}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List enrollment tokens (never their secrets): id, name, prefix, state, uses, expiry.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke an enrollment token; agents already enrolled are not affected.
    Revoke {
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ApiTokenCmd {
    /// Create an API token for a user and print it (shown once).
    Create {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// A label for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ServerCmd {
    /// List servers with their agent, protection and risk status.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Register a server that has no agent yet (status not_installed).
    Add {
        name: String,
        /// Project of the server.
        #[arg(long, default_value = "default")]
        project: String,
        /// Region label.
        #[arg(long, default_value = "")]
        region: String,
        /// IP address of the server (repeatable).
        #[arg(long = "ip")]
        ips: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Allow a new agent on a server that has (or had) one: prints a one-time install command,
    /// valid 24 hours, that binds the next enrollment to this server. Needed after an OS
    /// re-install; without it a server's identity cannot be taken by re-enrolling.
    Reinstall {
        /// The server id (see `hostward server list`).
        id: String,
        /// Lifetime of the one-time command in seconds, at most 7 days (default: 24 hours).
        #[arg(long)]
        expires_in_secs: Option<i64>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Delete a server (and revoke its agent).
    Del {
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum AgentCmd {
    /// Revoke a server's agent: its certificate is refused from now on and a live session closes.
    Revoke {
        /// The server id (see `hostward server list`).
        server_id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum VulndbCmd {
    /// Import a feed: an OSV JSON file (one record or an array), a directory or .zip of OSV
    /// files (Debian, Ubuntu, AlmaLinux, Rocky, Red Hat, Alpine), or a Debian Security Tracker
    /// JSON file. Records that do not parse are skipped and listed; the rest lands in one
    /// transaction, and every running center re-matches all servers within seconds.
    Import {
        /// The file, directory or zip archive.
        path: PathBuf,
        /// Replace the whole database with this feed instead of merging into it by advisory id.
        #[arg(long)]
        replace: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Show the database version, advisory count and recent imports.
    Status {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum CaCmd {
    /// Print the SHA-256 fingerprint of the CA certificate (what install commands pin).
    Fingerprint {
        #[command(flatten)]
        db: DbArgs,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// JSON logs on stderr.
pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        let pw = s.trim_end_matches(['\n', '\r']).to_string();
        Ok((pw, false))
    } else {
        Ok((crate::auth::random_password(), true))
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let system = Principal::system();
    match cli.command {
        Command::Serve(args) => {
            let cfg = args.resolve(&PathBuf::from(DEFAULT_DATA_DIR))?;
            init_logging(&cfg.log);
            let running = server::start(cfg).await?;
            if let Some((user, password)) = quickstart::bootstrap_admin(&running.state).await? {
                // Straight to the terminal, never through the log pipeline.
                println!(
                    "Created the first administrator. User: {user}  One-time password: {password}"
                );
            }
            server::shutdown_signal().await;
            tracing::info!("shutting down");
            running.shutdown();
            Ok(())
        }
        Command::Up(args) => quickstart::up(args).await,
        Command::User(cmd) => user(cmd, &system).await,
        Command::Project(ProjectCmd::Add { name, db }) => {
            let p = db.state().await?.store.ensure_project(&name).await?;
            println!("{}", p.id);
            Ok(())
        }
        Command::Project(ProjectCmd::List { db }) => {
            for p in db.state().await?.store.list_projects().await? {
                println!("{}\t{}", p.id, p.name);
            }
            Ok(())
        }
        Command::Token(cmd) => token(cmd, &system).await,
        Command::ApiToken(ApiTokenCmd::Create { user, name, db }) => {
            let state = db.state().await?;
            let secret = api::api_tokens::create_for_user(&state, &user, &name).await?;
            println!("{secret}");
            Ok(())
        }
        Command::Server(cmd) => server_cmd(cmd, &system).await,
        Command::Agent(AgentCmd::Revoke { server_id, db }) => {
            let state = db.state().await?;
            api::servers::revoke(&state, &system, &server_id)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
            println!("revoked the agent of server {server_id}");
            Ok(())
        }
        Command::Vulndb(VulndbCmd::Import {
            path,
            replace,
            json,
            db,
        }) => {
            let state = db.state().await?;
            // Only the name: the center's own paths are not for every console user to see.
            let source = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            let done = crate::capabilities::risk::matching::import(
                &state.store,
                &path,
                &source,
                replace,
                "cli",
            )
            .await
            .with_context(|| format!("importing {}", path.display()))?;
            if json {
                return print_json(&done);
            }
            println!(
                "imported {} advisories from {} (database version {}); skipped {} records",
                done.advisories, done.source, done.version, done.skipped
            );
            for s in done.skipped_detail.as_array().into_iter().flatten() {
                println!(
                    "  skipped {}: {}",
                    s["source"].as_str().unwrap_or(""),
                    s["reason"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        Command::Vulndb(VulndbCmd::Status { db }) => {
            let state = db.state().await?;
            print_json(
                &crate::capabilities::risk::api::vulndb(&state, &system)
                    .await
                    .map_err(api_err)?,
            )
        }
        Command::Ca(CaCmd::Fingerprint { db }) => {
            let args = ServeArgs {
                config: db.config,
                data_dir: db.data_dir,
                database_url: db.database_url,
                ..Default::default()
            };
            let cfg = args.resolve(&PathBuf::from(DEFAULT_DATA_DIR))?;
            let pem = std::fs::read_to_string(cfg.data_dir.join("ca.crt")).with_context(|| {
                format!(
                    "reading {}/ca.crt (has the center started once?)",
                    cfg.data_dir.display()
                )
            })?;
            println!("{}", hostward_pki::fingerprint_sha256(&pem)?);
            Ok(())
        }
    }
}

fn api_err(e: api::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", e.code, e.message)
}

async fn project_id(state: &AppState, name: &str) -> anyhow::Result<String> {
    match state.store.project_by_name(name).await? {
        Some(p) => Ok(p.id),
        None => bail!("no project named {name:?} (create it with `hostward project add {name}`)"),
    }
}

async fn user(cmd: UserCmd, system: &Principal) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Add {
            name,
            project,
            role,
            superadmin,
            password_stdin,
            db,
        } => {
            let state = db.state().await?;
            let (password, generated) = read_password(password_stdin)?;
            let project_id = project_id(&state, &project).await?;
            let input = api::users::CreateUser {
                username: name.clone(),
                password,
                is_superadmin: superadmin,
                project_id: Some(project_id),
                role: Some(role.parse().map_err(|e: String| anyhow::anyhow!(e))?),
            };
            let created = api::users::create(&state, system, input.clone())
                .await
                .map_err(api_err)?;
            if generated {
                println!(
                    "created user {} with password: {}",
                    created.username, input.password
                );
            } else {
                println!("created user {}", created.username);
            }
            Ok(())
        }
        UserCmd::List { json, db } => {
            let users = api::users::list(&db.state().await?, system)
                .await
                .map_err(api_err)?;
            if json {
                return print_json(&users);
            }
            for u in users {
                println!("{}\t{}", u.username, serde_json::to_string(&u.roles)?);
            }
            Ok(())
        }
        UserCmd::Passwd {
            name,
            password_stdin,
            db,
        } => {
            let state = db.state().await?;
            let (password, generated) = read_password(password_stdin)?;
            let user = state
                .store
                .user_by_name(&name)
                .await?
                .with_context(|| format!("no user named {name:?}"))?;
            let done = api::users::set_password(&state, system, &user.id, &password)
                .await
                .map_err(api_err)?;
            eprintln!(
                "{name}: {} sessions ended, {} API tokens revoked; a new password is asked at next sign-in",
                done.sessions_ended, done.api_tokens_revoked
            );
            if generated {
                println!("new password for {name}: {password}");
            }
            Ok(())
        }
        UserCmd::Del { name, db } => {
            let state = db.state().await?;
            let user = state
                .store
                .user_by_name(&name)
                .await?
                .with_context(|| format!("no user named {name:?}"))?;
            api::users::delete(&state, system, &user.id)
                .await
                .map_err(api_err)?;
            Ok(())
        }
    }
}

async fn token(cmd: TokenCmd, system: &Principal) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create {
            project,
            name,
            region,
            expires_in_secs,
            max_uses,
            allow_cidrs,
            json,
            db,
        } => {
            let state = db.state().await?;
            let input = api::tokens::CreateEnrollmentToken {
                project_id: Some(project_id(&state, &project).await?),
                name,
                region: Some(region),
                expires_in_secs,
                allowed_cidrs: Some(allow_cidrs),
                max_uses,
            };
            let created = api::tokens::create(&state, system, input)
                .await
                .map_err(api_err)?;
            if json {
                return print_json(&serde_json::json!({
                    "id": created.token.id,
                    "secret": created.secret,
                    "install_command": created.install_command,
                    "ca_sha256": state.pki.ca_fingerprint,
                }));
            }
            println!("Enrollment token (shown once): {}", created.secret);
            println!("CA SHA-256: {}", state.pki.ca_fingerprint);
            println!(
                "Install the agent on a server with:\n  {}",
                created.install_command
            );
            Ok(())
        }
        TokenCmd::List { json, db } => {
            let tokens = api::tokens::list(&db.state().await?, system)
                .await
                .map_err(api_err)?;
            if json {
                return print_json(&tokens);
            }
            let now = hostward_store::now();
            for t in tokens {
                let uses = match t.max_uses {
                    Some(m) => format!("{}/{m} uses", t.uses),
                    None => format!("{} uses", t.uses),
                };
                let expires = t
                    .expires_at
                    .map_or_else(|| "never expires".to_string(), |e| format!("expires {e}"));
                println!(
                    "{}\t{}\t{}\t{}\t{uses}\t{expires}",
                    t.id,
                    t.name,
                    t.prefix,
                    t.state(now)
                );
            }
            Ok(())
        }
        TokenCmd::Revoke { id, db } => {
            api::tokens::revoke(&db.state().await?, system, &id)
                .await
                .map_err(api_err)?;
            println!("revoked enrollment token {id}");
            Ok(())
        }
    }
}

async fn server_cmd(cmd: ServerCmd, system: &Principal) -> anyhow::Result<()> {
    match cmd {
        ServerCmd::List { json, db } => {
            let state = db.state().await?;
            let filter = hostward_store::ServerFilter {
                visible_projects: state
                    .store
                    .list_projects()
                    .await?
                    .into_iter()
                    .map(|p| p.id)
                    .collect(),
                page: 1,
                per_page: 500,
                ..Default::default()
            };
            let (servers, _) = state.store.list_servers(&filter).await?;
            if json {
                return print_json(&servers);
            }
            println!(
                "{:<36}  {:<24}  {:<24}  {:<24}  RISK",
                "ID", "NAME", "AGENT", "PROTECTION"
            );
            for s in servers {
                let agent = if s.agent_reason.is_empty() {
                    s.agent_status
                } else {
                    format!("{} ({})", s.agent_status, s.agent_reason)
                };
                let prot = if s.protection_reason.is_empty() {
                    s.protection_status
                } else {
                    format!("{} ({})", s.protection_status, s.protection_reason)
                };
                println!(
                    "{:<36}  {:<24}  {:<24}  {:<24}  {}",
                    s.id, s.name, agent, prot, s.risk_status
                );
            }
            Ok(())
        }
        ServerCmd::Add {
            name,
            project,
            region,
            ips,
            db,
        } => {
            let state = db.state().await?;
            let input = api::servers::CreateServer {
                project_id: Some(project_id(&state, &project).await?),
                name,
                region: Some(region),
                ip_addresses: Some(ips),
            };
            let s = api::servers::create(&state, system, input)
                .await
                .map_err(api_err)?;
            println!("{}", s.id);
            Ok(())
        }
        ServerCmd::Del { id, db } => {
            api::servers::delete(&db.state().await?, system, &id)
                .await
                .map_err(api_err)?;
            println!("deleted server {id}");
            Ok(())
        }
        ServerCmd::Reinstall {
            id,
            expires_in_secs,
            db,
        } => {
            let input = api::tokens::CreateReinstallToken { expires_in_secs };
            let created = api::tokens::reinstall(&db.state().await?, system, &id, input)
                .await
                .map_err(api_err)?;
            println!(
                "One-time re-install command for server {id} (shown once; run it on the server as root):"
            );
            println!("{}", created.install_command);
            Ok(())
        }
    }
}
