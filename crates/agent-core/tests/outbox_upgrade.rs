//! An agent upgraded in place keeps its queue: `fixtures/outbox-sqlx-0.1.0.db` was written by
//! the 0.1.0 agent (sqlx's SQLite; `hostward-agent emit --count 3`, records 1 to 3 unsent), and
//! the rusqlite outbox must read it as it is, send what it holds and number on from it.

use hostward_agent_core::outbox::Outbox;
use hostward_proto::{Event, Message};

#[tokio::test]
async fn an_outbox_written_by_the_sqlx_agent_is_read_and_continued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/outbox-sqlx-0.1.0.db"
        ),
        &path,
    )
    .unwrap();
    let outbox = Outbox::open(&path, 10_000).await.unwrap();
    assert_eq!(outbox.depth().await.unwrap(), 3);
    assert_eq!(outbox.last_seq().await.unwrap(), 3);
    let unsent = outbox.unsent_after(0, 10).await.unwrap();
    let seqs: Vec<u64> = unsent.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    for env in &unsent {
        let Message::Event(e) = &env.msg else {
            panic!("expected the queued events, got {:?}", env.msg)
        };
        assert_eq!(
            (e.event_type.as_str(), &e.data),
            ("custom", &serde_json::json!({"n": 1}))
        );
    }
    let next = Event {
        ts: 1,
        event_type: "custom".into(),
        data: serde_json::json!({"n": 2}),
    };
    assert_eq!(outbox.push(&Message::Event(next)).await.unwrap(), Some(4));
    assert_eq!(outbox.ack(3).await.unwrap(), 3);
    assert_eq!(outbox.depth().await.unwrap(), 1);
    outbox.close().await;
}
