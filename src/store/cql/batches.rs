//! How message writes are cut up: by partition, then into batches small
//! enough for the server; and which buckets are already listed.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::ids::{AppId, ChatNumber};
use crate::model::Message;
use crate::store::bucket_of;

/// At most this many message bytes (bodies plus the other text columns plus a
/// fixed per-row allowance) go into one batch. Cassandra fails batches above
/// 50 KiB by default (`batch_size_fail_threshold`), ScyllaDB above 1 MiB.
const BATCH_MAX_BYTES: usize = 40 * 1024;

/// At most this many statements go into one batch.
const BATCH_MAX_ROWS: usize = 100;

/// What a message row costs beyond its text columns (keys, numbers, cell
/// timestamps) when sizing a batch; generous on purpose.
const ROW_OVERHEAD_BYTES: usize = 64;

/// How many `(app, chat, bucket)` keys a store remembers as already listed in
/// `chat_buckets` before it forgets them all (about 100 bytes each).
const KNOWN_BUCKETS_MAX: usize = 100_000;

/// The `(app, chat, bucket)` rows this store has already written to
/// `chat_buckets`, so that only the first write to a bucket pays for that row
/// (one extra round trip before the messages). Forgetting is always safe:
/// the row is then just written again, which is idempotent.
#[derive(Default)]
pub(super) struct KnownBuckets(Mutex<HashSet<(AppId, u64, u64)>>);

impl KnownBuckets {
    pub(super) fn contains(&self, key: &(AppId, u64, u64)) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(key)
    }

    pub(super) fn insert(&self, key: (AppId, u64, u64)) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= KNOWN_BUCKETS_MAX {
            known.clear();
        }
        known.insert(key);
    }
}

/// The partition a message belongs to: (app, chat, bucket).
pub(super) type PartitionKey<'a> = (&'a AppId, ChatNumber, u64);

/// Groups messages by partition, keeping their order inside each group.
pub(super) fn group_by_partition(messages: &[Message]) -> Vec<(PartitionKey<'_>, Vec<&Message>)> {
    let mut groups: std::collections::BTreeMap<PartitionKey<'_>, Vec<&Message>> = Default::default();
    for message in messages {
        groups.entry((&message.app, message.chat, bucket_of(message.number))).or_default().push(message);
    }
    groups.into_iter().collect()
}

/// What a message weighs when sizing a batch.
fn batch_weight(message: &Message) -> usize {
    message.body.len()
        + message.sender.as_ref().map_or(0, |s| s.as_str().len())
        + message.client_msg_id.as_ref().map_or(0, String::len)
        + message.app.as_str().len()
        + ROW_OVERHEAD_BYTES
}

/// Splits one partition's messages into batches of at most `BATCH_MAX_ROWS`
/// rows and `BATCH_MAX_BYTES` bytes (a single bigger message goes alone).
pub(super) fn split_batches<'a>(messages: &[&'a Message]) -> Vec<Vec<&'a Message>> {
    let mut batches = Vec::new();
    let mut current: Vec<&Message> = Vec::new();
    let mut bytes = 0;
    for &message in messages {
        let weight = batch_weight(message);
        if !current.is_empty() && (current.len() == BATCH_MAX_ROWS || bytes + weight > BATCH_MAX_BYTES) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(message);
        bytes += weight;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MessageNumber, Timestamp};

    fn message(number: u64, body_len: usize) -> Message {
        Message {
            app: AppId::new("app"),
            chat: ChatNumber(1),
            number: MessageNumber(number),
            body: "x".repeat(body_len),
            sender: None,
            client_msg_id: None,
            reply_to: None,
            created_at: Timestamp(0),
            edited_at: None,
            deleted_at: None,
            reply_count: 0,
            last_reply_at: None,
            attachments: Vec::new(),
            reactions: Default::default(),
        }
    }

    #[test]
    fn batches_are_capped_by_rows_and_bytes() {
        let small: Vec<Message> = (1..=250).map(|n| message(n, 10)).collect();
        let refs: Vec<&Message> = small.iter().collect();
        let sizes: Vec<usize> = split_batches(&refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 50]);

        let big: Vec<Message> = (1..=30).map(|n| message(n, 4000)).collect();
        let refs: Vec<&Message> = big.iter().collect();
        let batches = split_batches(&refs);
        assert!(batches.iter().all(|b| b.iter().map(|m| batch_weight(m)).sum::<usize>() <= BATCH_MAX_BYTES));
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 30);

        let huge = [message(1, 100_000), message(2, 10)];
        let refs: Vec<&Message> = huge.iter().collect();
        assert_eq!(split_batches(&refs).iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
    }

    #[test]
    fn messages_are_grouped_by_partition() {
        let messages: Vec<Message> = [1, 1023, 1024, 2, 5000].into_iter().map(|n| message(n, 1)).collect();
        let groups = group_by_partition(&messages);
        let shape: Vec<(u64, Vec<u64>)> =
            groups.iter().map(|(k, ms)| (k.2, ms.iter().map(|m| m.number.get()).collect())).collect();
        assert_eq!(shape, [(0, vec![1, 1023, 2]), (1, vec![1024]), (4, vec![5000])]);
    }
}
