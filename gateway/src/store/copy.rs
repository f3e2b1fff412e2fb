//! `venue migrate --from sqlite://… --to postgres://…`: moves a venue from its SQLite file to
//! an empty PostgreSQL database, every table and row with its ids, in one transaction.
//!
//! Both ends are migrated first (the source to the current schema, as `venue` would at start;
//! the target gets the PostgreSQL schema). The target must hold no row in any of Venue's
//! tables (`Conflict` otherwise: nothing is written). Rows are copied parent tables first
//! (rooms before streamers before bookings …), then each `BIGSERIAL` sequence is set past the
//! largest id copied, so new rows get new ids. The list of tables and columns below must match
//! the SQLite schema exactly: a table or column it does not know makes the copy refuse
//! (`Invalid`) rather than drop data.

use futures_util::TryStreamExt;
use std::sync::Arc;

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row};

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{DatabaseUrl, StoreError};

/// How a column is read from SQLite and bound into PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `INTEGER` → `BIGINT`.
    Int,
    /// `REAL` → `DOUBLE PRECISION`.
    Real,
    /// `TEXT` → `TEXT`.
    Text,
    /// `INTEGER` 0/1 → `BOOLEAN`.
    Bool,
    /// `BLOB` → `BYTEA`.
    Blob,
}

/// One of Venue's tables: its columns in order, and whether `id` is a `BIGSERIAL`.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    serial_id: bool,
}

use Kind::{Blob, Bool, Int, Real, Text};

/// Every table of migrations 0001–0007, parents before children.
const TABLES: &[Table] = &[
    Table {
        name: "rooms",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("title", Text),
            ("layout", Int),
            ("created_at", Int),
        ],
        serial_id: true,
    },
    Table {
        name: "streamers",
        columns: &[
            ("id", Int),
            ("room_id", Int),
            ("name", Text),
            ("key_hash", Text),
            ("created_at", Int),
            ("sticker_set", Text),
            ("slot_bound", Bool),
        ],
        serial_id: true,
    },
    Table {
        name: "stage_slots",
        columns: &[("room_id", Int), ("slot_index", Int), ("streamer_id", Int)],
        serial_id: false,
    },
    Table {
        name: "room_settings",
        columns: &[
            ("room_id", Int),
            ("now_playing", Text),
            ("background_color", Text),
            ("mode", Text),
            ("sticker_set", Text),
            ("slow_mode_s", Int),
        ],
        serial_id: false,
    },
    Table {
        name: "chat_messages",
        columns: &[
            ("room_id", Int),
            ("id", Int),
            ("user_id", Int),
            ("display_name", Text),
            ("text", Text),
            ("sent_ms", Int),
            ("starred", Bool),
            ("admin", Bool),
            ("deleted", Bool),
        ],
        serial_id: false,
    },
    Table {
        name: "stickers",
        columns: &[
            ("room_id", Int),
            ("id", Int),
            ("sticker_id", Text),
            ("x", Real),
            ("y", Real),
            ("rotation_deg", Real),
            ("scale", Real),
            ("user_id", Int),
            ("placed_ms", Int),
        ],
        serial_id: false,
    },
    Table {
        name: "sticker_sets",
        columns: &[("id", Text), ("name", Text), ("stickers", Text)],
        serial_id: false,
    },
    Table {
        name: "sticker_images",
        columns: &[
            ("set_id", Text),
            ("sticker_id", Text),
            ("content_type", Text),
            ("data", Blob),
            ("updated_at", Int),
        ],
        serial_id: false,
    },
    Table {
        name: "bans",
        columns: &[
            ("id", Int),
            ("room_id", Int),
            ("ip_hash", Text),
            ("until_ms", Int),
            ("reason", Text),
        ],
        serial_id: true,
    },
    Table {
        name: "mutes",
        columns: &[
            ("room_id", Int),
            ("ip_hash", Text),
            ("name_key", Text),
            ("until_ms", Int),
        ],
        serial_id: false,
    },
    Table {
        name: "stars",
        columns: &[("room_id", Int), ("ip_hash", Text), ("name_key", Text)],
        serial_id: false,
    },
    Table {
        name: "events",
        columns: &[
            ("id", Int),
            ("room_id", Int),
            ("title", Text),
            ("start_at", Int),
            ("end_at", Int),
            ("slot_seconds", Int),
            ("public_signup", Bool),
            ("created_at", Int),
        ],
        serial_id: true,
    },
    Table {
        name: "bookings",
        columns: &[
            ("id", Int),
            ("event_id", Int),
            ("streamer_id", Int),
            ("start_at", Int),
            ("end_at", Int),
            ("artist_name", Text),
            ("description", Text),
            ("location", Text),
            ("timezone", Text),
            ("email", Text),
            ("created_at", Int),
        ],
        serial_id: true,
    },
    Table {
        name: "recordings",
        columns: &[
            ("id", Int),
            ("room_id", Int),
            ("streamer_id", Int),
            ("booking_id", Int),
            ("artist", Text),
            ("file", Text),
            ("start_ms", Int),
            ("end_ms", Int),
            ("duration_ms", Int),
            ("bytes", Int),
            ("node", Text),
        ],
        serial_id: true,
    },
];

/// What [`sqlite_to_postgres`] copied: rows per table, in copy order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
}

impl CopyReport {
    /// Rows copied in all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// Copies the SQLite database `from` (`sqlite://PATH`, must exist) into the empty PostgreSQL
/// database `to` (`postgres://…`, must exist; its schema is created). Errors: `Invalid` (wrong
/// URL schemes, no such file, a source table or column this version does not know),
/// `Conflict` (the target holds rows), `Db`, `Migrate`.
pub async fn sqlite_to_postgres(from: &str, to: &str) -> Result<CopyReport, StoreError> {
    let DatabaseUrl::Sqlite(path) = DatabaseUrl::parse(from)? else {
        return Err(StoreError::Invalid(
            "--from must be a sqlite:// URL (the venue's SQLite file)".into(),
        ));
    };
    let DatabaseUrl::Postgres(to) = DatabaseUrl::parse(to)? else {
        return Err(StoreError::Invalid(
            "--to must be a postgres:// URL (an empty PostgreSQL database)".into(),
        ));
    };
    let source = SqliteStore::open_file(&path, false).await?;
    let result = async {
        check_source_schema(&source).await?;
        let target = PgStore::connect(&to).await?;
        let copied = copy_all(&source, &target).await;
        target.close().await;
        copied
    }
    .await;
    source.close().await;
    result
}

/// Refuses a source whose tables or columns differ from [`TABLES`].
async fn check_source_schema(source: &SqliteStore) -> Result<(), StoreError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name",
    )
    .fetch_all(source.pool())
    .await?;
    for name in &tables {
        let Some(table) = TABLES.iter().find(|t| t.name == name) else {
            return Err(StoreError::Invalid(format!(
                "the source has a table {name:?} this version of venue migrate does not know; \
                 use the venue release that made the database"
            )));
        };
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                .bind(name)
                .fetch_all(source.pool())
                .await?;
        let known: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        if columns.iter().map(String::as_str).collect::<Vec<_>>() != known {
            return Err(StoreError::Invalid(format!(
                "table {name:?} of the source has columns {columns:?}, venue migrate expects \
                 {known:?}"
            )));
        }
    }
    Ok(())
}

/// The copy itself, in one PostgreSQL transaction. The dynamic SQL is made of the constant
/// names in [`TABLES`] only (`AssertSqlSafe`); every value is bound.
async fn copy_all(source: &SqliteStore, target: &PgStore) -> Result<CopyReport, StoreError> {
    let mut tx = target.pool().begin().await?;
    for table in TABLES {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", table.name);
        let taken: bool = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await?;
        if taken {
            return Err(StoreError::Conflict(format!(
                "the target database is not empty (table {} has rows); venue migrate copies \
                 into an empty database only",
                table.name
            )));
        }
    }
    let mut report = CopyReport { tables: Vec::new() };
    for table in TABLES {
        let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let select = format!("SELECT {} FROM {}", columns.join(", "), table.name);
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let insert: Arc<str> = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            columns.join(", "),
            placeholders.join(", ")
        )
        .into();
        let mut rows = sqlx::query(AssertSqlSafe(select)).fetch(source.pool());
        let mut count = 0u64;
        while let Some(row) = rows.try_next().await? {
            bind_row(sqlx::query(AssertSqlSafe(insert.clone())), table, &row)?
                .execute(&mut *tx)
                .await?;
            count += 1;
        }
        if table.serial_id {
            let reset = format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), \
                 COALESCE((SELECT MAX(id) FROM {0}), 0) + 1, false)",
                table.name
            );
            sqlx::query(AssertSqlSafe(reset)).execute(&mut *tx).await?;
        }
        report.tables.push((table.name, count));
    }
    tx.commit().await?;
    Ok(report)
}

/// Binds the columns of one source row, each as its [`Kind`] (NULL stays NULL).
fn bind_row<'q>(
    mut query: Query<'q, sqlx::Postgres, PgArguments>,
    table: &Table,
    row: &SqliteRow,
) -> Result<Query<'q, sqlx::Postgres, PgArguments>, sqlx::Error> {
    for (i, (_, kind)) in table.columns.iter().enumerate() {
        query = match kind {
            Int => query.bind(row.try_get::<Option<i64>, _>(i)?),
            Real => query.bind(row.try_get::<Option<f64>, _>(i)?),
            Text => query.bind(row.try_get::<Option<String>, _>(i)?),
            Bool => query.bind(row.try_get::<Option<bool>, _>(i)?),
            Blob => query.bind(row.try_get::<Option<Vec<u8>>, _>(i)?),
        };
    }
    Ok(query)
}
