//! A simulated agent's outbox, in memory: the records it has not seen acked, in seq order, so a
//! lost session resends them in the next one as the real agent's outbox does.

use std::collections::VecDeque;

use hostward_agent_core::util;
use hostward_proto::{Envelope, Message};

/// Records kept per simulated agent at most; beyond, new ones are dropped (and counted), as the
/// real outbox does when full.
pub const MAX_RECORDS: usize = 10_000;

struct Record {
    seq: u64,
    json: String,
    event: bool,
}

/// What [`Outbox::ack`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Acked {
    pub events: u64,
    pub others: u64,
}

pub struct Outbox {
    records: VecDeque<Record>,
    /// Highest seq ever assigned.
    seq: u64,
    cap: usize,
}

impl Outbox {
    pub fn new(cap: usize) -> Outbox {
        Outbox {
            records: VecDeque::new(),
            seq: 0,
            cap,
        }
    }

    /// The next seq: from the clock (µs), so it stays strictly above anything an earlier run of
    /// the same cached identity sent, without keeping the outbox on disk.
    fn next_seq(&mut self) -> u64 {
        self.seq = (self.seq + 1).max(util::unix_now_ms() * 1000);
        self.seq
    }

    /// The seq to put in `hello` (the highest ever assigned, moved up to the clock).
    pub fn hello_seq(&mut self) -> u64 {
        self.seq = self.seq.max(util::unix_now_ms() * 1000);
        self.seq
    }

    /// Queues a record with the next seq; false (and nothing queued) when the outbox is full.
    pub fn push(&mut self, msg: Message) -> bool {
        if self.records.len() >= self.cap {
            return false;
        }
        let event = matches!(msg, Message::Event(_) | Message::Alarm(_));
        let seq = self.next_seq();
        self.records.push_back(Record {
            seq,
            json: Envelope::record(seq, msg).to_json(),
            event,
        });
        true
    }

    /// The center stored everything up to `seq`: forget those records.
    pub fn ack(&mut self, seq: u64) -> Acked {
        let mut acked = Acked::default();
        while let Some(r) = self.records.front()
            && r.seq <= seq
        {
            if r.event {
                acked.events += 1;
            } else {
                acked.others += 1;
            }
            self.records.pop_front();
        }
        acked
    }

    /// Up to `window` records in flight: the frames (seq, JSON, is an event) after `sent_upto`
    /// that may go now, given that every record kept up to `sent_upto` is unacked.
    pub fn next_batch(&self, sent_upto: u64, window: usize) -> Vec<(u64, String, bool)> {
        let first = self.records.partition_point(|r| r.seq <= sent_upto);
        let room = window.saturating_sub(first);
        self.records
            .iter()
            .skip(first)
            .take(room)
            .map(|r| (r.seq, r.json.clone(), r.event))
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::Event;

    fn event(n: u64) -> Message {
        Message::Event(Event {
            ts: 1,
            event_type: "sim".into(),
            data: serde_json::json!({ "n": n }),
        })
    }

    #[test]
    fn seqs_grow_and_acks_drop_a_prefix() {
        let mut o = Outbox::new(3);
        let start = o.hello_seq();
        assert!(o.push(event(1)) && o.push(event(2)));
        assert!(o.push(Message::Bye(hostward_proto::Bye { reason: "x".into() })));
        assert!(!o.push(event(3)), "full");
        let batch = o.next_batch(0, 10);
        let seqs: Vec<u64> = batch.iter().map(|b| b.0).collect();
        assert!(
            seqs[0] > start && seqs.windows(2).all(|w| w[0] < w[1]),
            "{seqs:?}"
        );
        assert_eq!(o.hello_seq(), seqs[2].max(util::unix_now_ms() * 1000));
        assert_eq!(
            o.ack(seqs[0]),
            Acked {
                events: 1,
                others: 0
            }
        );
        assert_eq!(o.len(), 2);
        assert_eq!(
            o.ack(seqs[2]),
            Acked {
                events: 1,
                others: 1
            }
        );
        assert_eq!(o.len(), 0);
        assert!(o.push(event(4)));
        assert!(o.next_batch(0, 10)[0].0 > seqs[2]);
    }

    #[test]
    fn the_window_counts_unacked_records_sent() {
        let mut o = Outbox::new(100);
        for n in 0..10 {
            o.push(event(n));
        }
        let all = o.next_batch(0, 100);
        assert_eq!(o.next_batch(0, 4).len(), 4);
        // Four sent and unacked: room for two more in a window of six.
        let next = o.next_batch(all[3].0, 6);
        assert_eq!(next.len(), 2);
        assert_eq!(next[0].0, all[4].0);
        // After a lost session everything unacked goes again, in order.
        o.ack(all[1].0);
        let again = o.next_batch(0, 100);
        assert_eq!(again.len(), 8);
        assert_eq!(again[0].0, all[2].0);
        assert!(again[0].1.contains("\"kind\":\"event\""));
    }
}
