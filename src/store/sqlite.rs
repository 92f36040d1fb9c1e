//! What only SQLite needs: opening a file with a plain reason when it cannot be, refusing
//! an empty file, and its migrations (one transaction per step, `user_version`).

use super::*;

/// Why a database could not be opened, as an operator would say it: one line, the file
/// and the plain cause, instead of SQLite's "unable to open database file" three times.
pub(super) fn open_reason(path: &Path, e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode as C;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let writable = |p: &Path| std::fs::OpenOptions::new().write(true).open(p).is_ok();
    match e.sqlite_error_code() {
        Some(C::CannotOpen) if !path.exists() && !dir_writable(dir) => format!(
            "the folder {} is read-only or not writable, so the database cannot be created there; make it writable or set `state.path` to a writable place",
            std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()).display()
        ),
        Some(C::CannotOpen) if path.exists() && !writable(path) => {
            "the file is read-only or not writable for this user; Gazette writes its ledger there".into()
        }
        Some(C::CannotOpen) => "the file cannot be opened (check the path and its permissions)".into(),
        Some(C::ReadOnly) => "the file (or its folder, for the -wal and -shm files beside it) is read-only".into(),
        Some(C::DiskFull) => "the disk is full".into(),
        Some(C::NotADatabase) => "the file is not a SQLite database (it is corrupt or another kind of file); restore it from a backup".into(),
        Some(C::DatabaseCorrupt) => "the database is corrupt; restore it from a backup".into(),
        Some(C::DatabaseBusy) | Some(C::DatabaseLocked) => "another process holds it locked; try again".into(),
        _ => e.to_string(),
    }
}

/// Whether files can be created in `dir` (tried, since permission bits do not tell
/// the whole story for root or ACLs).
fn dir_writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".gazette-probe-{}", std::process::id()));
    let ok = std::fs::File::create(&probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// An existing 0-byte database is refused rather than silently made new (that would
/// forget the ledger and every imported subscriber). A file another process is just
/// creating is 0 bytes for a moment, with its `-wal` beside it or soon grown: waited for.
pub(super) fn refuse_empty(path: &Path) -> Result<()> {
    for _ in 0..20 {
        match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => {
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                if Path::new(&wal).exists() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => return Ok(()),
        }
    }
    Err(StoreError::Empty {
        path: path.to_owned(),
    })
}

/// Brings a SQLite database up to the newest schema, one step per transaction.
pub(super) fn migrate_sqlite(conn: &mut Connection, path: &Path) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    // Off while migrating: a migration may rebuild a table others refer to (SQLite's
    // documented procedure); the references are checked before each commit.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    loop {
        // The version is read inside the write transaction: two processes opening a
        // new database at once (`gazette run` and its web endpoint, or `serve`)
        // must not both apply the same step.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > known {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found: version,
                known,
            });
        }
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            tx.commit()?;
            break;
        };
        tx.execute_batch(sql)?;
        let broken: i64 =
            tx.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            return Err(StoreError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                Some(format!(
                    "migration {} left {broken} broken references",
                    version + 1
                )),
            )));
        }
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}
