//! The schema: the embedded migrations, the version a keyspace is at, and
//! how a migration is applied.

use scylla::client::session::Session;

use super::rows::{decode_rows, ts};
use crate::ids::Timestamp;
use crate::store::StoreError;

/// The embedded migrations: (version, name, CQL text), oldest first.
pub(super) const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "initial", include_str!("../../../cql/001_initial.cql")),
    (2, "realtime", include_str!("../../../cql/002_realtime.cql")),
    (3, "user_groups", include_str!("../../../cql/003_user_groups.cql")),
    (4, "edits", include_str!("../../../cql/004_edits.cql")),
    (5, "threads", include_str!("../../../cql/005_threads.cql")),
    (6, "reactions", include_str!("../../../cql/006_reactions.cql")),
    (7, "groups", include_str!("../../../cql/007_groups.cql")),
    (8, "attachments", include_str!("../../../cql/008_attachments.cql")),
    (9, "webhooks", include_str!("../../../cql/009_webhooks.cql")),
    (10, "notifications", include_str!("../../../cql/010_notifications.cql")),
    (11, "sessions", include_str!("../../../cql/011_sessions.cql")),
    (12, "server_keys", include_str!("../../../cql/012_server_keys.cql")),
    (13, "audit", include_str!("../../../cql/013_audit.cql")),
];

/// The schema version this build needs (the newest embedded migration).
pub const SCHEMA_VERSION: u32 = 13;

/// The migrations recorded in `keyspace` (none when the keyspace or its
/// `schema_migrations` table does not exist yet).
pub(super) async fn recorded_migrations(
    session: &Session,
    keyspace: &str,
) -> Result<std::collections::BTreeSet<u32>, StoreError> {
    let found = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
            (keyspace, "schema_migrations"),
        )
        .await
        .map_err(StoreError::unavailable)?;
    if decode_rows::<(String,)>(found, "system_schema.tables")?.is_empty() {
        return Ok(std::collections::BTreeSet::new());
    }
    let versions = session
        .query_unpaged(format!("SELECT version FROM {keyspace}.schema_migrations"), ())
        .await
        .map_err(StoreError::unavailable)?;
    decode_rows::<(i32,)>(versions, "schema_migrations")?
        .into_iter()
        .map(|(v,)| u32::try_from(v).map_err(|_| StoreError::Corrupt { what: "schema_migrations version" }))
        .collect()
}

/// The highest migration recorded, and whether every embedded migration is
/// recorded (numbers merged from parallel branches may land below the highest).
pub(super) async fn schema_version(session: &Session, keyspace: &str) -> Result<(u32, bool), StoreError> {
    let recorded = recorded_migrations(session, keyspace).await?;
    let complete = MIGRATIONS.iter().all(|m| recorded.contains(&m.0));
    Ok((recorded.last().copied().unwrap_or(0), complete))
}

/// Runs one migration's statements in order, then records it.
pub(super) async fn apply_migration(
    session: &Session,
    version: u32,
    name: &str,
    text: &str,
) -> Result<(), StoreError> {
    for statement in cql_statements(text) {
        match session.query_unpaged(statement.as_str(), ()).await {
            Ok(_) => {}
            // A re-run of a migration whose ALTER ... ADD already applied.
            Err(e) if statement.starts_with("ALTER TABLE") && is_existing_column(&e.to_string()) => {}
            Err(e) => return Err(StoreError::unavailable(e)),
        }
    }
    let version = i32::try_from(version).map_err(|_| StoreError::Corrupt { what: "migration version" })?;
    session
        .query_unpaged(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (version, name, ts(Timestamp::now())),
        )
        .await
        .map_err(StoreError::unavailable)?;
    Ok(())
}

/// Whether an error says the column an `ALTER TABLE ... ADD` adds exists
/// (Cassandra: "already exists"; ScyllaDB: "conflicts with an existing column").
fn is_existing_column(message: &str) -> bool {
    message.contains("already exist") || message.contains("conflicts with an existing column")
}

/// Splits a `.cql` file into statements: on `;`, without full-line `--`
/// comments, skipping what is left empty.
fn cql_statements(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(';').filter_map(|chunk| {
        let statement =
            chunk.lines().filter(|line| !line.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
        let statement = statement.trim();
        (!statement.is_empty()).then(|| statement.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_end_at_schema_version() {
        // Numbers may skip (branches claim theirs in parallel; `migrate`
        // applies whatever is not recorded), but never repeat or go back.
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert_eq!(versions.first(), Some(&1));
        assert_eq!(versions.last(), Some(&SCHEMA_VERSION));
    }

    #[test]
    fn statements_are_split_without_comments() {
        let text = "-- a comment\nCREATE TABLE a (x int PRIMARY KEY);\n\n-- only a comment\n;\n\
                    CREATE TABLE b (\n  -- inner\n  y int PRIMARY KEY\n);\n";
        let statements: Vec<String> = cql_statements(text).collect();
        assert_eq!(
            statements,
            ["CREATE TABLE a (x int PRIMARY KEY)", "CREATE TABLE b (\n  y int PRIMARY KEY\n)"]
        );
    }

    #[test]
    fn comments_hold_no_semicolon() {
        // A semicolon in a comment would split a statement in two.
        for (version, _, text) in MIGRATIONS {
            let commented =
                text.lines().filter(|l| l.trim_start().starts_with("--")).any(|l| l.contains(';'));
            assert!(!commented, "migration {version} has a semicolon in a comment");
        }
    }

    #[test]
    fn the_realtime_migration_adds_its_tables() {
        let statements: Vec<String> = cql_statements(MIGRATIONS[1].2).collect();
        assert_eq!(statements.len(), 3);
        assert!(statements[0].starts_with("ALTER TABLE applications ADD"));
        assert!(is_existing_column(
            "Invalid column name jwks_url because it conflicts with an existing column"
        ));
        assert!(is_existing_column("Column with name 'jwks_url' already exists"));
    }

    #[test]
    fn the_notifications_migration_creates_its_two_tables() {
        let text = MIGRATIONS.iter().find(|m| m.0 == 10).map(|m| m.2).unwrap();
        let statements: Vec<String> = cql_statements(text).collect();
        assert_eq!(statements.len(), 2);
        assert!(statements[0].starts_with("CREATE TABLE IF NOT EXISTS devices ("));
        assert!(statements[1].starts_with("CREATE TABLE IF NOT EXISTS notification_settings ("));
    }

    #[test]
    fn the_initial_migration_creates_every_table() {
        let statements: Vec<String> = cql_statements(MIGRATIONS[0].2).collect();
        assert_eq!(statements.len(), 8);
        assert!(statements.iter().all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS")));
    }
}
