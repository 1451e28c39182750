//! Per chat, how far the index is complete ([`SearchIndex::indexed_through`]),
//! in a small redb file next to the index: a committed write survives a crash.
//!
//! [`SearchIndex::indexed_through`]: crate::search::SearchIndex::indexed_through

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::ids::{AppId, ChatNumber, MessageNumber};

/// (application, chat) → the highest number indexed with none missing below it.
const INDEXED_THROUGH: TableDefinition<(&str, u64), u64> = TableDefinition::new("indexed_through");

/// The positions file.
pub struct Positions {
    db: Database,
}

impl Positions {
    /// Opens (or creates) `path`.
    pub fn open(path: &Path) -> Result<Self, redb::Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(INDEXED_THROUGH)?;
        txn.commit()?;
        Ok(Self { db })
    }

    /// The position of `chat` (0: nothing indexed).
    pub fn get(&self, app: &AppId, chat: ChatNumber) -> Result<MessageNumber, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(INDEXED_THROUGH)?;
        let seq = table.get((app.as_str(), chat.get()))?.map_or(0, |v| v.value());
        Ok(MessageNumber(seq))
    }

    /// Raises the position of `chat` to `seq` (never lowers it: batches may
    /// report out of order).
    pub fn raise(&self, app: &AppId, chat: ChatNumber, seq: MessageNumber) -> Result<(), redb::Error> {
        self.raise_many(&[(app.clone(), chat, seq)])
    }

    /// [`raise`](Self::raise) for many chats, in one transaction.
    pub fn raise_many(&self, marks: &[(AppId, ChatNumber, MessageNumber)]) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(INDEXED_THROUGH)?;
            for (app, chat, seq) in marks {
                let key = (app.as_str(), chat.get());
                let current = table.get(key)?.map_or(0, |v| v.value());
                if seq.get() > current {
                    table.insert(key, seq.get())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Forgets every position (the index they described is gone).
    pub fn clear(&self) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        txn.delete_table(INDEXED_THROUGH)?;
        txn.open_table(INDEXED_THROUGH)?;
        txn.commit()?;
        Ok(())
    }
}
