//! One agent's session: hello, config, then frames both ways until bye, timeout, revocation
//! or a dropped connection.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};
use hostward_proto::{AgentConfig, DecodeError, Envelope, ErrorFrame, Message, Resume, Task};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::listener::Peer;
use super::{Control, Gateway};
use crate::AppState;
use crate::metrics as m;
use hostward_store::status::{self, StopHint};
use hostward_store::{FollowUp, Server, now};

/// Rejected frames after which a session is closed: a confused or hostile agent.
const MAX_REJECTED: u32 = 10;
/// How long one record is retried while the database fails, before the session is closed so
/// the agent resends it later. Long enough to ride out a database restart without closing
/// thousands of sessions; short enough that the agent's heartbeats are read again soon.
const STORE_RETRY_BUDGET: Duration = Duration::from_secs(30);
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

type Sink = futures_util::stream::SplitSink<WebSocket, WsMessage>;

async fn send(sink: &mut Sink, env: &Envelope) -> Result<(), axum::Error> {
    metrics::counter!(m::FRAMES_OUT).increment(1);
    sink.send(WsMessage::Text(env.to_json().into())).await
}

async fn send_error(sink: &mut Sink, code: &str, message: &str) {
    let frame = Envelope::control(Message::Error(ErrorFrame {
        code: code.into(),
        message: message.into(),
    }));
    let _ = send(sink, &frame).await;
}

async fn close(sink: &mut Sink, code: &'static str, message: &str) {
    send_error(sink, code, message).await;
    // 4000-4999 are application close codes; the reason repeats the error code.
    let _ = sink
        .send(WsMessage::Close(Some(CloseFrame {
            code: 4000,
            reason: code.into(),
        })))
        .await;
    let _ = sink.close().await;
}

fn reject(e: &DecodeError) {
    metrics::counter!(m::FRAMES_REJECTED, "reason" => e.code()).increment(1);
}

/// How a session ended, which decides the offline reason.
enum End {
    /// `bye`: the agent stopped on purpose.
    Bye(StopHint),
    /// The center closed it for a reason that is already, or now, the offline reason.
    Closed { reason: &'static str },
    /// The connection dropped or was closed without `bye`: maybe a network blip. The agent gets
    /// three heartbeats to come back before it counts as offline.
    Dropped,
    /// A newer session of the same agent took over.
    Replaced,
}

pub(super) async fn run(state: AppState, server: Server, peer: Peer, socket: WebSocket) {
    let span = tracing::info_span!("agent", agent_id = %peer.identity.agent_id, server_id = %server.id, peer = %peer.addr);
    session(state, server, peer, socket).instrument(span).await
}

async fn session(state: AppState, server: Server, peer: Peer, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let gw = state.gateway.clone();
    let agent_id = peer.identity.agent_id.clone();

    // The first frame must be hello.
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(WsMessage::Text(t)))) => {
            metrics::counter!(m::FRAMES_IN).increment(1);
            match Envelope::from_json(t.as_str()) {
                Ok(Envelope {
                    msg: Message::Hello(h),
                    ..
                }) => h,
                Ok(_) => {
                    metrics::counter!(m::FRAMES_REJECTED, "reason" => "no_hello").increment(1);
                    return close(&mut sink, "no_hello", "the first frame must be hello").await;
                }
                Err(e) => {
                    reject(&e);
                    return close(&mut sink, e.code(), &e.to_string()).await;
                }
            }
        }
        _ => return,
    };
    if hello.protocol != hostward_proto::PROTOCOL_VERSION {
        let msg = format!(
            "agent protocol {} unsupported; center speaks {}",
            hello.protocol,
            hostward_proto::PROTOCOL_VERSION
        );
        set_offline(
            &state,
            &server.id,
            status::offline::VERSION_UNSUPPORTED,
            StopHint::None,
        )
        .await;
        return close(&mut sink, "version_unsupported", &msg).await;
    }
    let skew = hello.now - now();
    if skew.abs() > hostward_proto::MAX_CLOCK_SKEW_SECS {
        let msg = format!("agent clock is {skew} s off the center's; fix NTP on the server");
        set_offline(
            &state,
            &server.id,
            status::offline::CLOCK_SKEW,
            StopHint::None,
        )
        .await;
        return close(&mut sink, "clock_skew", &msg).await;
    }

    let (tx, mut rx) = mpsc::channel::<Control>(64);
    let conn_id = gw.register(&server.id, &agent_id, tx);
    let server = match state
        .store
        .agent_hello(&server.id, &hello.facts, &hello.agent_version)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "storing hello failed");
            gw.unregister(&server.id, conn_id, None);
            return close(&mut sink, "unavailable", "center database unavailable").await;
        }
    };
    if hello.outbox_id.is_empty() {
        // An agent without outbox ids: the old rule, lower the stored seq to its counter.
        if (hello.last_seq as i64) < server.last_seq {
            tracing::warn!(
                agent_last_seq = hello.last_seq,
                stored = server.last_seq,
                "agent outbox restarted below the stored seq"
            );
            let _ = state
                .store
                .reset_last_seq(&server.id, hello.last_seq as i64)
                .await;
        }
    } else {
        if !server.outbox_id.is_empty() && server.outbox_id != hello.outbox_id {
            tracing::warn!(
                stored_outbox = %server.outbox_id,
                agent_outbox = %hello.outbox_id,
                stored_seq = server.last_seq,
                "agent connected with a new outbox; records queued in the old one may be lost"
            );
            if let Err(e) = state.store.outbox_replaced(&server.id, now()).await {
                tracing::error!(error = %e, "recording the outbox replacement failed");
            }
        }
        // Before config, so before the agent sends any record.
        let resume = Envelope::control(Message::Resume(Resume {
            outbox_id: server.outbox_id.clone(),
            last_seq: server.last_seq.max(0) as u64,
        }));
        if send(&mut sink, &resume).await.is_err() {
            gw.unregister(&server.id, conn_id, Some(now()));
            return;
        }
    }
    tracing::info!(version = %hello.agent_version, "agent online");
    if send(&mut sink, &config_frame(&state, &gw, &server).await)
        .await
        .is_err()
    {
        gw.unregister(&server.id, conn_id, Some(now()));
        return;
    }
    gw.tasks_queued(std::slice::from_ref(&server.id));

    let hb = Duration::from_secs(state.config.heartbeat_secs);
    let mut last_frame = Instant::now();
    let mut last_frame_unix = now();
    let mut rejected = 0u32;
    let mut check = tokio::time::interval(hb);
    let end = loop {
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(WsMessage::Text(t))) => t,
                    Some(Ok(WsMessage::Binary(_))) => {
                        metrics::counter!(m::FRAMES_IN).increment(1);
                        metrics::counter!(m::FRAMES_REJECTED, "reason" => "binary").increment(1);
                        send_error(&mut sink, "malformed", "binary frames are not part of the protocol").await;
                        rejected += 1;
                        if rejected >= MAX_REJECTED { close(&mut sink, "too_many_errors", "too many rejected frames").await; break End::Dropped; }
                        continue;
                    }
                    Some(Ok(WsMessage::Close(_))) | None => break End::Dropped,
                    Some(Ok(_)) => { last_frame = Instant::now(); continue; } // ping/pong
                    Some(Err(e)) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("Space limit") {
                            metrics::counter!(m::FRAMES_REJECTED, "reason" => "oversized").increment(1);
                            tracing::warn!(error = %text, "oversized frame; closing");
                            close(&mut sink, "oversized", "frame exceeds the transport limit").await;
                        }
                        break End::Dropped;
                    }
                };
                metrics::counter!(m::FRAMES_IN).increment(1);
                last_frame = Instant::now();
                last_frame_unix = now();
                let env = match Envelope::from_json(text.as_str()) {
                    Ok(env) => env,
                    Err(e) => {
                        reject(&e);
                        tracing::warn!(code = e.code(), error = %e, "rejected a frame");
                        send_error(&mut sink, e.code(), &e.to_string()).await;
                        rejected += 1;
                        if rejected >= MAX_REJECTED { close(&mut sink, "too_many_errors", "too many rejected frames").await; break End::Dropped; }
                        continue;
                    }
                };
                match env.msg {
                    Message::Heartbeat(h) => gw.saw(&server.id, h),
                    Message::Bye(b) => {
                        let hint = if b.reason == "system_shutdown" { StopHint::SystemShutdown } else { StopHint::None };
                        break End::Bye(hint);
                    }
                    msg if msg.is_record() => {
                        if env.seq == 0 {
                            metrics::counter!(m::FRAMES_REJECTED, "reason" => "no_seq").increment(1);
                            send_error(&mut sink, "malformed", "records need a seq above 0").await;
                            continue;
                        }
                        let stored = store_record(&state, &server.id, &hello.outbox_id, env.seq, &msg).await;
                        // Frames waited unread while the store was retried: the center was busy,
                        // not the agent silent.
                        last_frame = Instant::now();
                        match stored {
                            Some(stored) => {
                                for step in stored.follow_ups {
                                    follow_up(&state, &server, step).await;
                                }
                                let ack = Envelope::control(Message::Ack(hostward_proto::Ack { seq: stored.high }));
                                if send(&mut sink, &ack).await.is_err() { break End::Dropped; }
                            }
                            // Nothing later in this session may be stored (its ack would cover
                            // this record): close, and the agent resends from this record on.
                            None => {
                                metrics::counter!(m::RECORDS_UNAVAILABLE).increment(1);
                                close(&mut sink, "unavailable", "the center could not store a record; send it again later").await;
                                break End::Dropped;
                            }
                        }
                    }
                    other => {
                        metrics::counter!(m::FRAMES_REJECTED, "reason" => "unexpected_kind").increment(1);
                        let (kind, _) = other.kind_and_body();
                        send_error(&mut sink, "unexpected_kind", &format!("agents do not send {kind} frames")).await;
                    }
                }
            }
            ctl = rx.recv() => match ctl {
                Some(Control::Tasks(tasks)) => {
                    let mut ok = Vec::with_capacity(tasks.len());
                    for t in tasks {
                        let frame = Envelope::control(Message::Task(Task { id: t.id.clone(), kind: t.kind, params: t.params, expires_at: t.expires_at }));
                        if send(&mut sink, &frame).await.is_err() { break; }
                        ok.push(t.id);
                    }
                    gw.delivered(ok);
                }
                Some(Control::ConfigChanged) => {
                    if let Ok(Some(s)) = state.store.server(&server.id).await
                        && send(&mut sink, &config_frame(&state, &gw, &s).await).await.is_err() {
                        break End::Dropped;
                    }
                }
                Some(Control::Close { code: "replaced", message }) => {
                    close(&mut sink, "replaced", &message).await;
                    break End::Replaced;
                }
                Some(Control::Close { code, message }) => {
                    close(&mut sink, code, &message).await;
                    break End::Closed { reason: if code == "revoked" { status::offline::REVOKED } else { status::offline::AGENT_STOPPED } };
                }
                None => break End::Replaced,
            },
            _ = check.tick() => {
                if last_frame.elapsed() > hb * 3 {
                    close(&mut sink, "heartbeat_timeout", "no frame for three heartbeat intervals").await;
                    break End::Closed { reason: status::offline::HEARTBEAT_TIMEOUT };
                }
            }
        }
    };

    match end {
        End::Bye(hint) => {
            gw.unregister(&server.id, conn_id, None);
            set_offline(&state, &server.id, status::offline::AGENT_STOPPED, hint).await;
        }
        End::Closed { reason } => {
            gw.unregister(&server.id, conn_id, None);
            set_offline(&state, &server.id, reason, StopHint::None).await;
        }
        End::Dropped => gw.unregister(&server.id, conn_id, Some(last_frame_unix)),
        End::Replaced => gw.unregister(&server.id, conn_id, None),
    }
}

/// Stores one record, retrying while the database fails (for up to [`STORE_RETRY_BUDGET`]),
/// and returns what to ack, or None when it could not be stored in time. The ack then covers
/// exactly the records stored: a failed record is never skipped by a later one. A record no
/// retry can store is kept in `rejected_records` and acked. Every failure is counted and
/// logged with the agent (from the session's span) and the seq.
async fn store_record(
    state: &AppState,
    server_id: &str,
    outbox_id: &str,
    seq: u64,
    msg: &Message,
) -> Option<hostward_store::Stored> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let err = match state
            .store
            .store_records_from(server_id, outbox_id, &[(seq, msg.clone())])
            .await
        {
            Ok(stored) => {
                metrics::counter!(m::RECORDS_STORED).increment(1);
                return Some(stored);
            }
            Err(e) => e,
        };
        metrics::counter!(m::RECORDS_STORE_FAILURES).increment(1);
        if err.is_permanent() {
            tracing::error!(error = %err, seq, "a record cannot be stored; keeping it in rejected_records");
            match state
                .store
                .reject_record(server_id, outbox_id, seq, msg, &err.to_string())
                .await
            {
                Ok(high) => {
                    metrics::counter!(m::RECORDS_REJECTED).increment(1);
                    return Some(hostward_store::Stored {
                        high,
                        follow_ups: Vec::new(),
                    });
                }
                Err(e) => tracing::error!(error = %e, seq, "keeping the rejected record failed"),
            }
        } else {
            tracing::error!(error = %err, seq, "storing a record failed; retrying");
        }
        if started.elapsed() + pause > STORE_RETRY_BUDGET {
            tracing::error!(
                seq,
                "storing a record kept failing; closing the session so the agent resends it"
            );
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// The agent's config: the server's own switches plus its project's policies. The version grows
/// with either (both counters only grow). A policy that cannot be read is sent as its defaults,
/// rather than stopping the agent's config.
async fn config_frame(state: &AppState, gw: &Gateway, server: &Server) -> Envelope {
    let policy_version = state
        .store
        .policy_version(&server.project_id)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading the project's policy version failed");
            0
        });
    let version = server.config_version + policy_version;
    let mut config = AgentConfig::new(
        version,
        state.config.heartbeat_secs,
        server.protection_wanted,
    );
    config.sections = crate::capabilities::config_sections(state, server).await;
    config.gateways = gw.gateways();
    gw.config_sent(&server.id, version);
    Envelope::control(Message::Config(config))
}

/// Carries out what a records transaction asked for; capabilities name the steps, this knows
/// none of them. Tasks go through the task table so they survive a disconnect.
async fn follow_up(state: &AppState, server: &Server, step: FollowUp) {
    match step {
        FollowUp::PushConfig => state.gateway.config_changed(&server.id),
        FollowUp::Wake(job) => crate::capabilities::wake(state, job),
        FollowUp::QueueTask {
            kind,
            params,
            expires_in_secs,
        } => {
            let created = state
                .store
                .create_tasks(&hostward_store::NewTasks {
                    targets: &[(server.project_id.clone(), server.id.clone())],
                    kind,
                    params: &params,
                    created_by: "system",
                    expires_at: Some(now() + expires_in_secs),
                })
                .await;
            match created {
                Ok(rows) => state.gateway.tasks_created(&rows),
                Err(e) => tracing::error!(error = %e, kind, "queueing a follow-up task failed"),
            }
        }
    }
}

async fn set_offline(state: &AppState, server_id: &str, reason: &str, hint: StopHint) {
    match state
        .store
        .set_agent_status(server_id, status::OFFLINE, reason, hint)
        .await
    {
        Ok(_) => tracing::info!(reason, "agent offline"),
        // The server was deleted: nothing left to mark.
        Err(hostward_store::StoreError::NotFound(_)) => {}
        Err(e) => tracing::error!(error = %e, reason, "marking agent offline failed"),
    }
}
