//! File integrity monitoring (issue 15, in progress): the engine that baselines the policy's
//! paths and diffs two baselines. Not a module of the runtime yet: watching, reporting, the
//! center's history and alarms are what is left (see the session note).

pub mod engine;
