//! The one way a capability plugs into the agent: a [`Module`] gets each config the center
//! pushes, the tasks whose kinds it claims, and a [`RecordSender`] into the outbox; it adds its
//! figures to each heartbeat. The runtime knows modules only through this trait, so it never
//! names one (pulsar's `PulsarModule` and `ModuleContext`, made small).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use hostward_proto::{AgentConfig, Heartbeat, Task};

pub use crate::outbox::RecordSender;

/// A boxed future, so that [`Module`] stays usable as `dyn Module`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the runtime hands every module when the agent starts.
#[derive(Clone)]
pub struct Ctx {
    /// The agent's private state dir; a module keeps its files here, named after itself.
    pub state_dir: PathBuf,
    /// The filesystem root the host is read under: `/`, or a fixture tree in tests.
    pub root: PathBuf,
    /// Durable records to the center: they survive a disconnect and a restart.
    pub records: RecordSender,
}

/// A capability of the agent. Modules run their own loops (spawned when they are built) and
/// talk to the runtime only through these calls and their [`RecordSender`].
pub trait Module: Send + Sync {
    /// Short and stable, for logs.
    fn name(&self) -> &'static str;

    /// Task kinds this module runs. A kind belongs to one module; the daemon refuses to start
    /// when two claim the same kind.
    fn task_kinds(&self) -> &'static [&'static str] {
        &[]
    }

    /// Applies the center's config. Called for every `config` frame, in module-list order,
    /// before the next frame is read.
    fn on_config<'a>(&'a self, config: &'a AgentConfig) -> BoxFuture<'a, ()>;

    /// Runs one task of a kind in [`Module::task_kinds`]. The daemon has already checked that
    /// the task has not expired, and queues the `running` and final updates itself: `Ok` is the
    /// task's output, `Err` the reason it failed.
    fn on_task<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        Box::pin(async move { Err(format!("unknown task kind {:?}", task.kind)) })
    }

    /// Adds this module's figures to a heartbeat about to be sent.
    fn heartbeat(&self, _hb: &mut Heartbeat) {}

    /// The agent is stopping (SIGTERM, Ctrl-C): the last chance to leave the host in the
    /// state the module wants while nothing of it runs. Called in module-list order, each
    /// awaited; keep it short (systemd's stop timeout counts it).
    fn on_stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
