//! Backups of the embedded store while it serves, and their restore.
//!
//! A backup copies every table, row by row, from one read transaction into a
//! new redb file. A redb read transaction is a snapshot (writes committed
//! after it began are not seen, and the pages it reads are not reused while it
//! lives), so the copy is the store as of one commit, however many writes go
//! on meanwhile; the serving node never stops or blocks its writers. Copying
//! the file's bytes instead would not be consistent: a commit rewrites the
//! header and pages the snapshot does not hold while the copy runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::{
    APPS, APPS_BY_ID, CHATS, DIRECT_CHATS, EmbeddedStore, FILE_NAME, MEMBER_ROLES, MEMBERS, MESSAGES,
    READ_STATE, REPLIES, USER_CHATS, attachments, auth_sessions, devices, embedded, webhooks,
};
use crate::store::StoreError;

/// Why a backup or a restore could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store failed while being read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The snapshot holds a table this weft does not know (a newer weft wrote it).
    #[error("the store holds a table `{0}` this weft does not know")]
    UnknownTable(String),
    /// The file to restore is not a weft store.
    #[error("{path} is not a weft backup")]
    NotABackup {
        /// The file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: StoreError,
    },
    /// The data directory holds a store already (restore without `force`).
    #[error("{0} exists; move it away first (or restore with --force)")]
    Exists(PathBuf),
    /// A node has the data directory's store open.
    #[error("a running node holds {0}; stop it first")]
    InUse(PathBuf),
    /// A file could not be read, written or moved.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Copies one table from the snapshot into the new file.
fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
    copied: &mut BTreeSet<String>,
) -> Result<u64, StoreError> {
    let source = from.open_table(table).map_err(embedded)?;
    let mut target = to.open_table(table).map_err(embedded)?;
    let mut rows = 0;
    for row in source.iter().map_err(embedded)? {
        let (key, value) = row.map_err(embedded)?;
        target.insert(key.value(), value.value()).map_err(embedded)?;
        rows += 1;
    }
    copied.insert(table.name().to_owned());
    Ok(rows)
}

/// Every table of the store, copied from `from` into `to`; the rows copied.
fn copy_all(from: &ReadTransaction, to: &redb::WriteTransaction) -> Result<u64, BackupError> {
    let mut copied = BTreeSet::new();
    let c = &mut copied;
    let rows = copy(from, to, APPS, c)?
        + copy(from, to, APPS_BY_ID, c)?
        + copy(from, to, CHATS, c)?
        + copy(from, to, MESSAGES, c)?
        + copy(from, to, REPLIES, c)?
        + copy(from, to, MEMBERS, c)?
        + copy(from, to, MEMBER_ROLES, c)?
        + copy(from, to, USER_CHATS, c)?
        + copy(from, to, DIRECT_CHATS, c)?
        + copy(from, to, READ_STATE, c)?
        + copy(from, to, attachments::ATTACHMENTS, c)?
        + copy(from, to, webhooks::WEBHOOKS, c)?
        + copy(from, to, devices::DEVICES, c)?
        + copy(from, to, super::server_keys::SERVER_KEYS, c)?
        + copy(from, to, super::server_keys::APP_SERVER_KEYS, c)?
        + copy(from, to, devices::NOTIFICATION_SETTINGS, c)?
        + copy(from, to, auth_sessions::AUTH_SESSIONS, c)?
        + copy(from, to, auth_sessions::USER_AUTH_SESSIONS, c)?
        + copy(from, to, super::audit::AUDIT, c)?;
    // A table added to the store but not to this list would be left out
    // silently: refuse instead.
    for table in from.list_tables().map_err(embedded)? {
        if !copied.contains(table.name()) {
            return Err(BackupError::UnknownTable(table.name().to_owned()));
        }
    }
    Ok(rows)
}

impl EmbeddedStore {
    /// Writes a consistent copy of the whole store, as of one commit, to a new
    /// redb file at `to` (which must not exist), while the store goes on
    /// serving; returns the rows copied.
    pub async fn backup(&self, to: &Path) -> Result<u64, BackupError> {
        let to = to.to_owned();
        let db = std::sync::Arc::clone(&self.db);
        let copy = move || -> Result<u64, BackupError> {
            let snapshot = db.begin_read().map_err(embedded)?;
            if to.exists() {
                return Err(BackupError::Exists(to));
            }
            let out = Database::create(&to).map_err(embedded)?;
            let txn = out.begin_write().map_err(embedded)?;
            let rows = copy_all(&snapshot, &txn)?;
            txn.commit().map_err(embedded)?;
            Ok(rows)
        };
        tokio::task::spawn_blocking(copy).await.map_err(|e| StoreError::Embedded(Box::new(e)))?
    }

    /// Puts the backup at `from` in place as the store of `data_dir` (the node
    /// stopped): checked to open as a weft store, copied beside the target,
    /// then renamed over it. An existing store is replaced only with `force`.
    pub fn restore(from: &Path, data_dir: &Path, force: bool) -> Result<PathBuf, BackupError> {
        let not_a_backup = |source| BackupError::NotABackup { path: from.to_owned(), source };
        {
            let backup = Database::open(from).map_err(|e| not_a_backup(embedded(e)))?;
            let txn = backup.begin_read().map_err(|e| not_a_backup(embedded(e)))?;
            txn.open_table(APPS).map_err(|e| not_a_backup(embedded(e)))?;
            txn.open_table(MESSAGES).map_err(|e| not_a_backup(embedded(e)))?;
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BackupError::Io { path, source }
        };
        std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
        let target = data_dir.join(FILE_NAME);
        if target.exists() {
            match Database::open(&target) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(BackupError::InUse(target)),
                _ if !force => return Err(BackupError::Exists(target)),
                _ => {}
            }
        }
        let partial = data_dir.join(format!("{FILE_NAME}.restoring"));
        std::fs::copy(from, &partial).map_err(io(&partial))?;
        std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(io(&partial))?;
        std::fs::rename(&partial, &target).map_err(io(&target))?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backup_opens_as_a_store_and_restore_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("live")).unwrap();
        let copy = dir.path().join("copy.redb");
        assert!(matches!(store.backup(&copy).await, Ok(0)));
        assert!(matches!(store.backup(&copy).await, Err(BackupError::Exists(_))));
        let target = dir.path().join("restored");
        assert!(EmbeddedStore::restore(&copy, &target, false).is_ok());
        assert!(matches!(EmbeddedStore::restore(&copy, &target, false), Err(BackupError::Exists(_))));
        let live = dir.path().join("live");
        assert!(matches!(EmbeddedStore::restore(&copy, &live, true), Err(BackupError::InUse(_))));
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not redb").unwrap();
        assert!(matches!(EmbeddedStore::restore(&junk, &target, true), Err(BackupError::NotABackup { .. })));
    }
}
