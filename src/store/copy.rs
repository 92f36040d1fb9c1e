//! `gazette store copy`: every table of one store into another (SQLite ⇄ PostgreSQL),
//! in one transaction on the destination, checked by counts afterwards.

use super::db::{Backend, Value};
use super::{Result, Store, StoreError};

/// Every table, parents before the tables that refer to them.
const TABLES: &[&str] = &[
    "essay",
    "reply",
    "unplaced_reply",
    "source_state",
    "http_cache",
    "subscriber",
    "subscriber_digest",
    "digest_choice",
    "signup",
    "follow",
    "edition",
    "edition_item",
    "delivery",
    "schedule_tick",
    "inbound",
];

/// Tables with an `id` key: read in id order, a page at a time.
const KEYED: &[&str] = &[
    "essay",
    "reply",
    "subscriber",
    "signup",
    "edition",
    "delivery",
    "inbound",
];

/// Rows per page read from the source.
const PAGE: i64 = 5_000;

/// Copies every row of `src` into `dst`, which must be empty; calls `progress(table,
/// rows)` after each table. Returns the rows per table, equal on both sides.
pub(super) fn copy_all(
    src: &Store,
    dst: &mut Store,
    progress: &mut dyn FnMut(&str, i64),
) -> Result<Vec<(String, i64)>> {
    for t in TABLES {
        let n = count(dst, t)?;
        if n > 0 {
            return Err(StoreError::Copy(format!(
                "the destination is not empty: its table {t} has {n} rows; copy into a new, empty database"
            )));
        }
    }
    let tx = dst.conn.transaction()?;
    for t in TABLES {
        let mut copied = 0i64;
        let mut after = i64::MIN;
        loop {
            let page = if KEYED.contains(t) {
                src.conn.query_all(
                    &format!("SELECT * FROM {t} WHERE id > ?1 ORDER BY id LIMIT ?2"),
                    super::params![after, PAGE],
                )?
            } else {
                src.conn
                    .query_all(&format!("SELECT * FROM {t}"), super::params![])?
            };
            if page.rows.is_empty() {
                break;
            }
            let cols = page.columns.join(", ");
            let marks: Vec<String> = (1..=page.columns.len()).map(|i| format!("?{i}")).collect();
            let sql = format!("INSERT INTO {t} ({cols}) VALUES ({})", marks.join(", "));
            let id_col = page.columns.iter().position(|c| c == "id");
            let full = page.rows.len() as i64 == PAGE;
            for row in page.rows {
                if let Some(Value::Int(id)) = id_col.and_then(|i| row.get(i)) {
                    after = after.max(*id);
                }
                tx.execute(&sql, row)?;
                copied += 1;
            }
            if !KEYED.contains(t) || !full {
                break;
            }
        }
        progress(t, copied);
    }
    if tx.backend() == Backend::Postgres {
        // Identity columns were given their values: move each sequence past them.
        for t in KEYED {
            tx.query_row(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', 'id'), COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)::text"
                ),
                super::params![],
                |_| Ok(()),
            )?;
        }
    }
    tx.commit()?;
    let mut counts = Vec::new();
    for t in TABLES {
        let (a, b) = (count(src, t)?, count(dst, t)?);
        if a != b {
            return Err(StoreError::Copy(format!(
                "table {t}: {a} rows in the source but {b} in the destination after the copy; the destination is incomplete, do not use it"
            )));
        }
        counts.push(((*t).to_owned(), a));
    }
    Ok(counts)
}

fn count(s: &Store, table: &str) -> Result<i64> {
    Ok(s.conn.query_row(
        &format!("SELECT COUNT(*) FROM {table}"),
        super::params![],
        |r| r.get(0),
    )?)
}

impl Store {
    /// Copies this store into `dst` (empty, any backend); rows per table, checked equal.
    pub fn copy_into(
        &self,
        dst: &mut Store,
        progress: &mut dyn FnMut(&str, i64),
    ) -> Result<Vec<(String, i64)>> {
        copy_all(self, dst, progress)
    }
}
