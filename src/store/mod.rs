//! The only code that touches SQLite: migrations, idempotent upserts, editions,
//! deliveries and subscribers. It stores and answers; it holds no business rules.
//!
//! WAL mode with `synchronous=FULL`: a committed claim or settlement survives a process
//! crash and power loss (ARCHITECTURE.md, "Durability and speed of the ledger").

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use crate::config;
use crate::source::http::Validators;
use crate::source::{Essay, Gathered, Reply};

mod archive;
mod follows;
mod people;
pub use follows::{EssayRef, Followed};
pub use people::{Figures, Profile, Signup};

const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema2.sql"),
    include_str!("schema3.sql"),
    include_str!("schema4.sql"),
    include_str!("schema5.sql"),
    include_str!("schema6.sql"),
    include_str!("schema7.sql"),
    include_str!("schema8.sql"),
];

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or migrated.
    #[error("cannot open database {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The plain cause (read-only folder, disk full, not a database…).
        reason: String,
    },
    /// The folder for the database file could not be created.
    #[error("cannot create the folder for database {path}: {source}")]
    CreateDir {
        /// The database file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database was written by a newer Gazette.
    #[error("database {path} has schema version {found}, newer than this Gazette knows ({known}); upgrade Gazette")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// The file exists but is empty: not a database (a failed copy, a full disk).
    #[error("database {path} is an empty file (0 bytes), not a Gazette database: it may have been cut by a failed copy or a full disk. Restore it from a backup, or delete it to start a new database (its subscribers, editions and ledger would be gone)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A query failed.
    #[error("database error: {}", plain_sql(.0))]
    Sql(#[from] rusqlite::Error),
    /// A stored value could not be read back.
    #[error("database holds an unreadable value: {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// An essay as stored, with the store's own facts about it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEssay {
    /// Row id.
    pub id: i64,
    /// When Gazette first saw it.
    pub first_seen_at: DateTime<Utc>,
    /// Seen in its source's first gather (archive, not news).
    pub backfill: bool,
    /// The essay itself.
    pub essay: Essay,
}

/// A reply as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReply {
    /// Row id.
    pub id: i64,
    /// When Gazette first saw it.
    pub first_seen_at: DateTime<Utc>,
    /// Seen in its source's first gather.
    pub backfill: bool,
    /// The reply itself.
    pub reply: Reply,
}

/// A subscriber row.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberRow {
    /// Row id.
    pub id: i64,
    /// Normalised address.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// IANA time zone name.
    pub timezone: Option<String>,
    /// active / unsubscribed / bounced.
    pub status: String,
}

/// What [`Store::upsert_subscriber`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    /// A new subscriber.
    Added,
    /// Name, zone or digests changed.
    Updated,
    /// Already so.
    Unchanged,
    /// Left alone: the address unsubscribed or bounced.
    Suppressed {
        /// unsubscribed or bounced.
        status: String,
    },
}

/// An edition row.
#[derive(Debug, Clone, PartialEq)]
pub struct EditionRow {
    /// Row id.
    pub id: i64,
    /// Digest name.
    pub digest: String,
    /// The time zone of a local-time edition's readers; "" for everyone.
    pub audience: String,
    /// 1, 2, 3… per digest.
    pub number: i64,
    /// The schedule tick (or send time) it belongs to.
    pub scheduled_for: DateTime<Utc>,
    /// Start of the window of first-seen times it covers.
    pub window_from: DateTime<Utc>,
    /// End (exclusive) of that window.
    pub window_to: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its last delivery was settled.
    pub finished_at: Option<DateTime<Utc>>,
}

/// An edition with its delivery counts, for listings.
#[derive(Debug, Clone, PartialEq)]
pub struct EditionSummary {
    /// The edition.
    pub edition: EditionRow,
    /// Number of essays and replies frozen into it.
    pub essays: i64,
    /// Number of replies.
    pub replies: i64,
    /// Deliveries by status, in a fixed order: pending, sending, sent, deferred, failed, suppressed.
    pub deliveries: [(String, i64); 6],
}

/// A delivery owed to a subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDelivery {
    /// Delivery row id.
    pub id: i64,
    /// Attempts so far.
    pub attempts: i64,
    /// Who receives it.
    pub subscriber: SubscriberRow,
    /// The dead process's claim on a row it left in flight, `None` for pending rows.
    pub stale_claim: Option<String>,
    /// The threads (essay row ids) frozen for this copy; `None`: every thread.
    pub threads: Option<Vec<i64>>,
}

/// The result of one delivery attempt, for [`Store::step`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The transport accepted it.
    Sent {
        /// Delivery row.
        id: i64,
        /// When.
        at: DateTime<Utc>,
        /// The server's reply or where it was written.
        reply: String,
    },
    /// A transient failure: try again at `next_at`.
    Deferred {
        /// Delivery row.
        id: i64,
        /// The server's reply.
        reply: String,
        /// When to retry.
        next_at: DateTime<Utc>,
    },
    /// The transport failed for everyone (relay down, disk full): back to deferred
    /// without spending an attempt; the edition waits for the relay.
    Requeued {
        /// Delivery row.
        id: i64,
        /// What the transport said.
        reply: String,
        /// When to try again.
        next_at: DateTime<Utc>,
    },
    /// A permanent failure, or transient ones past the attempt limit.
    Failed {
        /// Delivery row.
        id: i64,
        /// The server's reply.
        reply: String,
    },
    /// "No such user": failed, and the subscriber is marked bounced.
    Bounced {
        /// Delivery row.
        id: i64,
        /// The subscriber.
        subscriber_id: i64,
        /// The server's reply.
        reply: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Not sent because the subscriber left or bounced meanwhile.
    Suppressed {
        /// Delivery row.
        id: i64,
        /// Why.
        reason: String,
    },
}

/// A delivery about to be handed to the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Delivery row.
    pub id: i64,
    /// The Message-ID it will carry.
    pub message_id: String,
    /// For a row a dead process left in flight: that process's claim, which must still be
    /// the one on the row (so a live process's fresh claim is never taken over).
    pub stale_claim: Option<String>,
}

/// What the new edition consists of, as decided by the edition stage.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEdition {
    /// Digest name.
    pub digest: String,
    /// The time zone of a local-time edition's readers; "" for everyone.
    pub audience: String,
    /// Its number: one more than the digest's previous edition.
    pub number: i64,
    /// The tick it belongs to.
    pub scheduled_for: DateTime<Utc>,
    /// Window start.
    pub window_from: DateTime<Utc>,
    /// Window end.
    pub window_to: DateTime<Utc>,
    /// Essay row ids, in display order.
    pub essays: Vec<i64>,
    /// Reply row ids, in display order.
    pub replies: Vec<i64>,
    /// Subscriber row ids who get a delivery row.
    pub subscribers: Vec<i64>,
    /// Essays of the window left out by `max_essays` ("and N more").
    pub more_essays: usize,
    /// For a `replies = "followed"` digest: the threads (essay row ids) each
    /// subscriber's copy carries; a subscriber not in it gets every thread.
    pub threads: std::collections::HashMap<i64, Vec<i64>>,
}

/// A source's gather history, for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceState {
    /// Last gather attempt.
    pub last_gathered_at: Option<DateTime<Utc>>,
    /// Last successful gather.
    pub last_ok_at: Option<DateTime<Utc>>,
    /// Error of the last gather, if it failed.
    pub last_error: Option<String>,
    /// New essays in the last successful gather.
    pub last_new_essays: i64,
    /// New replies in the last successful gather.
    pub last_new_replies: i64,
    /// The fallback route of the last successful gather, if it was on one.
    pub route: Option<String>,
    /// Replies waiting for their essay after the last successful gather.
    pub unplaced: i64,
}

/// Counts of what one gather added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    /// Essays not seen before.
    pub essays: usize,
    /// Replies not seen before.
    pub replies: usize,
    /// Replies of the source still waiting for their essay.
    pub unplaced: usize,
    /// New items left for a later gather by the source's `max_new_items`.
    pub held: usize,
}

/// What the store remembers about a source, for its next gather.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceMemory {
    /// Validators per fetched URL.
    pub validators: std::collections::HashMap<String, Validators>,
    /// Essays' comment feeds: (url, essay key).
    pub comment_feeds: Vec<(String, String)>,
    /// Stored essays: (url, key), newest first.
    pub essays: Vec<(Option<String>, String)>,
    /// Last successful gather.
    pub last_ok_at: Option<DateTime<Utc>>,
    /// Items with an origin id: origin id → (key, updated_at). Essays all (newest 5,000),
    /// replies first seen within `recent_replies` of now.
    pub origins: std::collections::HashMap<String, (String, Option<DateTime<Utc>>)>,
    /// The API root the source discovered on an earlier gather.
    pub api_root: Option<String>,
    /// Replies kept until their essay is known.
    pub unplaced: Vec<crate::source::Unplaced>,
}

/// Why a database could not be opened, as an operator would say it: one line, the file
/// and the plain cause, instead of SQLite's "unable to open database file" three times.
fn open_reason(path: &Path, e: &rusqlite::Error) -> String {
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

/// A query's failure in plain words where SQLite has a known cause.
fn plain_sql(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DiskFull) => "the disk is full".into(),
        Some(C::ReadOnly) => {
            "the database (or its folder, for the -wal and -shm files beside it) is read-only"
                .into()
        }
        Some(C::DatabaseCorrupt) | Some(C::NotADatabase) => {
            "the database file is corrupt; restore it from a backup".into()
        }
        Some(C::SystemIoFailure) => "the disk could not be read or written (I/O error)".into(),
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
fn refuse_empty(path: &Path) -> Result<()> {
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

/// Formats a time the way the store keeps it.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

fn opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

/// The ledger and archive, one SQLite connection.
pub struct Store {
    conn: Connection,
    /// When `step` last committed with a sync to disk (group commit).
    last_durable: Option<std::time::Instant>,
    /// A `step` has committed without a sync since.
    unsynced: bool,
}

/// How long delivery outcomes may sit in the OS before a commit syncs them to disk.
/// Every commit survives a process crash; this bounds what a power loss can undo.
pub const GROUP_COMMIT: Duration = Duration::from_millis(100);

impl Store {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.to_owned(),
                source,
            })?;
        }
        let wrap = |source: rusqlite::Error| StoreError::Open {
            path: path.to_owned(),
            reason: open_reason(path, &source),
        };
        refuse_empty(path)?;
        let conn = Connection::open(path).map_err(wrap)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(wrap)?;
        // Switching a new file to WAL takes an exclusive lock that the busy timeout does
        // not wait for: another process opening it at the same moment gets "locked".
        let mut tries = 0;
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => break,
                Err(e)
                    if tries < 50
                        && e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(wrap(e)),
            }
        }
        // FULL: a delivery marked in flight or sent survives power loss, not only a
        // process crash (ARCHITECTURE.md, "Durability and speed of the ledger").
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(wrap)?;
        let mut store = Store {
            conn,
            last_durable: None,
            unsynced: false,
        };
        store.migrate(path)?;
        Ok(store)
    }

    /// An in-memory copy of the database at `path` (or an empty one if there is none):
    /// dry runs and previews work on it so the real file is never changed.
    pub fn scratch_copy(path: &Path) -> Result<Store> {
        let wrap = |source: rusqlite::Error| StoreError::Open {
            path: path.to_owned(),
            reason: open_reason(path, &source),
        };
        let mut conn = Connection::open_in_memory().map_err(wrap)?;
        if path.exists() {
            let src = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(wrap)?;
            src.busy_timeout(Duration::from_secs(5)).map_err(wrap)?;
            let backup = rusqlite::backup::Backup::new(&src, &mut conn).map_err(wrap)?;
            backup
                .run_to_completion(256, Duration::ZERO, None)
                .map_err(wrap)?;
        }
        let mut store = Store {
            conn,
            last_durable: None,
            unsynced: false,
        };
        store.migrate(path)?;
        Ok(store)
    }

    fn migrate(&mut self, path: &Path) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        // Off while migrating: a migration may rebuild a table others refer to (SQLite's
        // documented procedure); the references are checked before each commit.
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        loop {
            // The version is read inside the write transaction: two processes opening a
            // new database at once (`gazette run` and its web endpoint, or `serve`)
            // must not both apply the same step.
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
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
                return Err(StoreError::Sql(rusqlite::Error::SqliteFailure(
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
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    /// Stores what a source gathered: new items get `first_seen_at = now`; known items
    /// are updated in place and keep their first-seen time, so they never become new again.
    pub fn upsert_gathered(
        &mut self,
        source: &str,
        g: &Gathered,
        now: DateTime<Utc>,
    ) -> Result<Added> {
        self.upsert_gathered_capped(source, g, now, usize::MAX)
    }

    /// [`Store::upsert_gathered`], taking at most `max_new` new essays (and ten times
    /// that many new replies) that would be news; the rest are held for a later gather,
    /// and the source's feeds are then fetched without validators until they are in.
    pub fn upsert_gathered_capped(
        &mut self,
        source: &str,
        g: &Gathered,
        now: DateTime<Utc>,
        max_new: usize,
    ) -> Result<Added> {
        let max_new_replies = max_new.saturating_mul(10);
        let now_s = ts(now);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let first_gather = tx
            .query_row(
                "SELECT 1 FROM source_state WHERE source = ?1 AND first_gathered_at IS NOT NULL",
                [source],
                |_| Ok(()),
            )
            .optional()?
            .is_none();
        let mut added = Added::default();
        {
            let mut exists_e =
                tx.prepare_cached("SELECT 1 FROM essay WHERE source = ?1 AND key = ?2")?;
            let mut upsert_e = tx.prepare_cached(
                "INSERT INTO essay (source, key, title, author, url, published_at, updated_at, summary, content_html, first_seen_at, backfill, origin_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (source, key) DO UPDATE SET
                   title = excluded.title, author = COALESCE(excluded.author, author), url = excluded.url,
                   published_at = excluded.published_at, updated_at = excluded.updated_at,
                   summary = excluded.summary, content_html = excluded.content_html,
                   origin_id = COALESCE(excluded.origin_id, origin_id), retracted_at = NULL",
            )?;
            // Context essays are archive by definition: stored as backfill, never counted.
            let all = g
                .essays
                .iter()
                .map(|e| (e, first_gather, false))
                .chain(g.context_essays.iter().map(|e| (e, true, true)));
            for (e, backfill, context) in all {
                let new = exists_e
                    .query_row(params![source, e.key], |_| Ok(()))
                    .optional()?
                    .is_none();
                // Archive (first gather, context) is never news, so never capped.
                if new && !backfill && added.essays >= max_new {
                    added.held += 1;
                    continue;
                }
                upsert_e.execute(params![
                    source,
                    e.key,
                    e.title,
                    e.author,
                    e.url,
                    e.published_at.map(ts),
                    e.updated_at.map(ts),
                    e.summary,
                    e.content_html,
                    now_s,
                    backfill,
                    e.origin_id
                ])?;
                added.essays += usize::from(new && !context);
            }
            let mut exists_r =
                tx.prepare_cached("SELECT 1 FROM reply WHERE source = ?1 AND key = ?2")?;
            let mut upsert_r = tx.prepare_cached(
                "INSERT INTO reply (source, key, essay_key, parent_key, author, url, published_at, content_html, first_seen_at, backfill, origin_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (source, key) DO UPDATE SET
                   essay_key = excluded.essay_key,
                   -- A route that cannot see threads (an RSS comment feed without its
                   -- \"In reply to\" line) must not erase a parent another route knew.
                   parent_key = COALESCE(excluded.parent_key, parent_key),
                   author = excluded.author, url = excluded.url,
                   published_at = excluded.published_at, content_html = excluded.content_html,
                   origin_id = COALESCE(excluded.origin_id, origin_id), retracted_at = NULL",
            )?;
            for r in &g.replies {
                let new = exists_r
                    .query_row(params![source, r.key], |_| Ok(()))
                    .optional()?
                    .is_none();
                if new && !first_gather && added.replies >= max_new_replies {
                    added.held += 1;
                    continue;
                }
                upsert_r.execute(params![
                    source,
                    r.key,
                    r.essay_key,
                    r.parent_key,
                    r.author,
                    r.url,
                    r.published_at.map(ts),
                    r.content_html,
                    now_s,
                    first_gather,
                    r.origin_id
                ])?;
                added.replies += usize::from(new);
            }
        }
        {
            // Unplaced replies: kept (first sighting wins), forgotten once placed or
            // after 30 days.
            let mut keep = tx.prepare_cached(
                "INSERT OR IGNORE INTO unplaced_reply (source, key, url, in_reply_to, in_reply_to_href, reply_to_comment, author, published_at, content_html, first_seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for u in &g.unplaced {
                keep.execute(params![
                    source,
                    u.key,
                    u.url,
                    u.in_reply_to,
                    u.in_reply_to_href,
                    u.reply_to_comment.and_then(|n| i64::try_from(n).ok()),
                    u.author,
                    u.published_at.map(ts),
                    u.content_html,
                    now_s
                ])?;
            }
            tx.execute(
                "DELETE FROM unplaced_reply WHERE source = ?1
                   AND (key IN (SELECT key FROM reply WHERE source = ?1) OR first_seen_at < ?2)",
                params![source, ts(now - chrono::Duration::days(30))],
            )?;
        }
        {
            let mut fetched = tx.prepare_cached(
                "INSERT INTO http_cache (url, source, essay_key, etag, last_modified, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (url) DO UPDATE SET source = ?2, essay_key = COALESCE(?3, essay_key),
                   etag = ?4, last_modified = ?5, fetched_at = ?6",
            )?;
            let mut unchanged =
                tx.prepare_cached("UPDATE http_cache SET fetched_at = ?2 WHERE url = ?1")?;
            for f in &g.fetches {
                // Held items must come back: the next fetch asks for the whole feed.
                let none = Validators::default();
                let validators = match &f.validators {
                    Some(_) if added.held > 0 => Some(&none),
                    v => v.as_ref(),
                };
                match validators {
                    Some(v) => fetched.execute(params![
                        f.url,
                        source,
                        f.essay_key,
                        v.etag,
                        v.last_modified,
                        now_s
                    ])?,
                    None => unchanged.execute(params![f.url, now_s])?,
                };
            }
        }
        tx.execute(
            "INSERT INTO source_state (source, first_gathered_at, last_gathered_at, last_ok_at, last_error, last_new_essays, last_new_replies, gathers, api_root, route)
             VALUES (?1, ?2, ?2, ?2, NULL, ?3, ?4, 1, ?5, ?6)
             ON CONFLICT (source) DO UPDATE SET last_gathered_at = ?2, last_ok_at = ?2,
               first_gathered_at = COALESCE(first_gathered_at, ?2),
               last_error = NULL, last_new_essays = ?3, last_new_replies = ?4, gathers = gathers + 1,
               api_root = COALESCE(?5, api_root), route = ?6",
            params![source, now_s, added.essays as i64, added.replies as i64, g.api_root, g.route],
        )?;
        added.unplaced = tx.query_row(
            "SELECT COUNT(*) FROM unplaced_reply WHERE source = ?1",
            [source],
            |r| r.get::<_, i64>(0),
        )? as usize;
        tx.execute(
            "UPDATE source_state SET last_unplaced = ?2 WHERE source = ?1",
            params![source, added.unplaced as i64],
        )?;
        tx.commit()?;
        Ok(added)
    }

    /// Records that gathering a source failed, for `status` and the logs.
    pub fn record_source_failure(
        &mut self,
        source: &str,
        now: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO source_state (source, last_gathered_at, last_error, gathers, failures) VALUES (?1, ?2, ?3, 1, 1)
             ON CONFLICT (source) DO UPDATE SET last_gathered_at = ?2, last_error = ?3,
               gathers = gathers + 1, failures = failures + 1",
            params![source, ts(now), error],
        )?;
        Ok(())
    }

    /// What a source's next gather should know: validators, comment feeds, essays.
    pub fn source_memory(
        &self,
        source: &str,
        now: DateTime<Utc>,
        recent_replies: chrono::Duration,
    ) -> Result<SourceMemory> {
        let mut memory = SourceMemory::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT url, essay_key, etag, last_modified FROM http_cache WHERE source = ?1 ORDER BY fetched_at DESC",
        )?;
        let rows = stmt.query_map([source], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })?;
        for row in rows {
            let (url, essay, etag, last_modified) = row?;
            if let Some(essay) = essay {
                memory.comment_feeds.push((url.clone(), essay));
            }
            memory.validators.insert(
                url,
                Validators {
                    etag,
                    last_modified,
                },
            );
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT url, key FROM essay WHERE source = ?1 ORDER BY COALESCE(published_at, first_seen_at) DESC LIMIT 5000",
        )?;
        memory.essays = stmt
            .query_map([source], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?;
        let last_ok: Option<String> = self
            .conn
            .query_row(
                "SELECT last_ok_at FROM source_state WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        memory.last_ok_at = opt_ts(last_ok)?;
        memory.api_root = self.source_api_root(source)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, url, in_reply_to, in_reply_to_href, reply_to_comment, author, published_at, content_html
             FROM unplaced_reply WHERE source = ?1 ORDER BY first_seen_at LIMIT 1000",
        )?;
        let rows = stmt.query_map([source], |r| {
            Ok((
                crate::source::Unplaced {
                    key: r.get(0)?,
                    url: r.get(1)?,
                    in_reply_to: r.get(2)?,
                    in_reply_to_href: r.get(3)?,
                    reply_to_comment: r
                        .get::<_, Option<i64>>(4)?
                        .and_then(|n| u64::try_from(n).ok()),
                    author: r.get(5)?,
                    published_at: None,
                    content_html: r.get(7)?,
                },
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        for row in rows {
            let (mut u, published) = row?;
            u.published_at = opt_ts(published)?;
            memory.unplaced.push(u);
        }
        let recent = ts(now - recent_replies);
        let mut stmt = self.conn.prepare_cached(
            "SELECT origin_id, key, updated_at FROM (SELECT origin_id, key, updated_at FROM essay
               WHERE source = ?1 AND origin_id IS NOT NULL ORDER BY id DESC LIMIT 5000)
             UNION ALL
             SELECT origin_id, key, NULL FROM reply
               WHERE source = ?1 AND origin_id IS NOT NULL AND first_seen_at >= ?2",
        )?;
        let rows = stmt.query_map(params![source, recent], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (origin, key, updated) = row?;
            memory.origins.insert(origin, (key, opt_ts(updated)?));
        }
        Ok(memory)
    }

    /// What the store knows about a source's gathers.
    pub fn source_state(&self, source: &str) -> Result<Option<SourceState>> {
        let row = self
            .conn
            .query_row(
                "SELECT last_gathered_at, last_ok_at, last_error, last_new_essays, last_new_replies, route, last_unplaced
                 FROM source_state WHERE source = ?1",
                [source],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(gathered, ok, error, essays, replies, route, unplaced)| {
            Ok(SourceState {
                route,
                unplaced,
                last_gathered_at: opt_ts(gathered)?,
                last_ok_at: opt_ts(ok)?,
                last_error: error,
                last_new_essays: essays,
                last_new_replies: replies,
            })
        })
        .transpose()
    }

    /// Deliveries still owed across all editions: (pending or in flight, deferred, the
    /// earliest retry time).
    pub fn owed(&self) -> Result<(i64, i64, Option<DateTime<Utc>>)> {
        let (pending, deferred, next): (i64, i64, Option<String>) = self.conn.query_row(
            "SELECT COALESCE(SUM(status IN ('pending', 'sending')), 0),
                    COALESCE(SUM(status = 'deferred'), 0),
                    MIN(CASE WHEN status = 'deferred' THEN next_attempt_at END)
             FROM delivery",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok((pending, deferred, opt_ts(next)?))
    }

    /// Makes the subscriber table agree with `config.toml` for config-origin rows.
    /// Status is never touched: an unsubscribed or bounced address stays so.
    pub fn sync_subscribers(
        &mut self,
        subs: &[config::Subscriber],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now_s = ts(now);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS listed (id INTEGER PRIMARY KEY)",
            [],
        )?;
        for s in subs {
            let email = s.email.to_string();
            tx.execute(
                "INSERT INTO subscriber (email, name, timezone, origin, status, changed_at)
                 VALUES (?1, ?2, ?3, 'config', 'active', ?4)
                 ON CONFLICT (email) DO UPDATE SET name = excluded.name, timezone = excluded.timezone",
                params![email, s.name, s.timezone.map(|t| t.name().to_owned()), now_s],
            )?;
            let id: i64 = tx.query_row(
                "SELECT id FROM subscriber WHERE email = ?1",
                [&email],
                |r| r.get(0),
            )?;
            tx.execute(
                "DELETE FROM subscriber_digest WHERE subscriber_id = ?1",
                [id],
            )?;
            for d in &s.digests {
                tx.execute(
                    "INSERT OR IGNORE INTO subscriber_digest (subscriber_id, digest) VALUES (?1, ?2)",
                    params![id, d],
                )?;
            }
            tx.execute("INSERT OR IGNORE INTO temp.listed (id) VALUES (?1)", [id])?;
        }
        // An address taken out of config.toml gets no digest any more (its row and
        // history stay; `subscribers list` shows it with no digests).
        tx.execute(
            "DELETE FROM subscriber_digest WHERE subscriber_id IN
               (SELECT id FROM subscriber WHERE origin = 'config' AND id NOT IN (SELECT id FROM temp.listed))",
            [],
        )?;
        tx.execute("DROP TABLE temp.listed", [])?;
        tx.commit()?;
        Ok(())
    }

    /// Adds a subscriber to the managed list or updates their name, zone and digests.
    /// An address that unsubscribed or bounced is left as it is: only the subscriber's
    /// own confirmation may bring it back.
    pub fn upsert_subscriber(
        &mut self,
        e: &crate::subscribers::Entry,
        origin: &str,
        now: DateTime<Utc>,
    ) -> Result<Upserted> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found: Option<(i64, Option<String>, Option<String>, String)> = tx
            .query_row(
                "SELECT id, name, timezone, status FROM subscriber WHERE email = ?1",
                [&e.email],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let outcome = match found {
            Some((_, _, _, status)) if status != "active" => {
                return Ok(Upserted::Suppressed { status });
            }
            Some((id, name, timezone, _)) => {
                let mut digests: Vec<String> = tx
                    .prepare_cached(
                        "SELECT digest FROM subscriber_digest WHERE subscriber_id = ?1 ORDER BY digest",
                    )?
                    .query_map([id], |r| r.get(0))?
                    .collect::<std::result::Result<_, _>>()?;
                digests.sort();
                if name == e.name && timezone == e.timezone && digests == e.digests {
                    return Ok(Upserted::Unchanged);
                }
                tx.execute(
                    "UPDATE subscriber SET name = ?2, timezone = ?3, changed_at = ?4 WHERE id = ?1",
                    params![id, e.name, e.timezone, ts(now)],
                )?;
                tx.execute(
                    "DELETE FROM subscriber_digest WHERE subscriber_id = ?1",
                    [id],
                )?;
                (id, Upserted::Updated)
            }
            None => {
                tx.execute(
                    "INSERT INTO subscriber (email, name, timezone, origin, status, changed_at)
                     VALUES (?1, ?2, ?3, ?4, 'active', ?5)",
                    params![e.email, e.name, e.timezone, origin, ts(now)],
                )?;
                (tx.last_insert_rowid(), Upserted::Added)
            }
        };
        for d in &e.digests {
            tx.execute(
                "INSERT OR IGNORE INTO subscriber_digest (subscriber_id, digest) VALUES (?1, ?2)",
                params![outcome.0, d],
            )?;
        }
        tx.commit()?;
        Ok(outcome.1)
    }

    /// Unsubscribes an address (it is suppressed from then on); returns its previous
    /// status, or `None` if it is not known.
    pub fn unsubscribe(&mut self, email: &str, now: DateTime<Utc>) -> Result<Option<String>> {
        let before: Option<String> = self
            .conn
            .query_row(
                "SELECT status FROM subscriber WHERE email = ?1",
                [email],
                |r| r.get(0),
            )
            .optional()?;
        if before.as_deref() == Some("active") {
            self.conn.execute(
                "UPDATE subscriber SET status = 'unsubscribed', changed_at = ?2 WHERE email = ?1",
                params![email, ts(now)],
            )?;
        }
        Ok(before)
    }

    /// Every subscriber with digests, status and origin, by address.
    pub fn list_subscribers(&self) -> Result<Vec<crate::subscribers::Listed>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.email, s.name, COALESCE(s.chosen_timezone, s.timezone), s.status, s.origin,
                    COALESCE((SELECT group_concat(digest, ';') FROM
                        (SELECT digest FROM subscription d WHERE d.subscriber_id = s.id ORDER BY digest)), '')
             FROM subscriber s ORDER BY s.email",
        )?;
        let rows = stmt.query_map([], |r| {
            let digests: String = r.get(5)?;
            Ok(crate::subscribers::Listed {
                email: r.get(0)?,
                name: r.get(1)?,
                timezone: r.get(2)?,
                status: r.get(3)?,
                origin: r.get(4)?,
                digests: digests
                    .split(';')
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// An address's status and when it last changed, if the address is known.
    pub fn subscriber_status(&self, email: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT status, changed_at FROM subscriber WHERE email = ?1",
                [email],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Active subscribers of a digest, in address order.
    pub fn active_subscribers(&self, digest: &str) -> Result<Vec<SubscriberRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.id, s.email, s.name, COALESCE(s.chosen_timezone, s.timezone), s.status FROM subscriber s
             JOIN subscription d ON d.subscriber_id = s.id
             WHERE d.digest = ?1 AND s.status = 'active' ORDER BY s.email",
        )?;
        let rows = stmt.query_map([digest], subscriber_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Sets a subscriber's status (e.g. after an unsubscribe or a hard bounce).
    pub fn set_subscriber_status(
        &mut self,
        email: &str,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE subscriber SET status = ?2, changed_at = ?3 WHERE email = ?1",
            params![email, status, ts(now)],
        )?;
        Ok(n > 0)
    }

    /// The newest edition of a digest.
    pub fn last_edition(&self, digest: &str) -> Result<Option<EditionRow>> {
        let row = self
            .conn
            .query_row(
                &format!("{EDITION_SELECT} WHERE digest = ?1 ORDER BY number DESC LIMIT 1"),
                [digest],
                edition_raw,
            )
            .optional()?;
        row.map(edition_from_raw).transpose()
    }

    /// Edition number `number` of a digest.
    pub fn edition_by_number(&self, digest: &str, number: i64) -> Result<Option<EditionRow>> {
        let row = self
            .conn
            .query_row(
                &format!("{EDITION_SELECT} WHERE digest = ?1 AND number = ?2"),
                params![digest, number],
                edition_raw,
            )
            .optional()?;
        row.map(edition_from_raw).transpose()
    }

    /// The newest edition of a digest for one audience ("" for everyone): where that
    /// audience's next window starts.
    pub fn last_edition_for(&self, digest: &str, audience: &str) -> Result<Option<EditionRow>> {
        let row = self
            .conn
            .query_row(
                &format!("{EDITION_SELECT} WHERE digest = ?1 AND audience = ?2 ORDER BY number DESC LIMIT 1"),
                [digest, audience],
                edition_raw,
            )
            .optional()?;
        row.map(edition_from_raw).transpose()
    }

    /// The last schedule tick the daemon handled for a digest and audience.
    pub fn last_tick(&self, digest: &str, audience: &str) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self
            .conn
            .query_row(
                "SELECT last_tick FROM schedule_tick WHERE digest = ?1 AND audience = ?2",
                [digest, audience],
                |r| r.get(0),
            )
            .optional()?;
        opt_ts(t)
    }

    /// Records that the daemon handled a tick (never moves backwards).
    pub fn set_last_tick(
        &mut self,
        digest: &str,
        audience: &str,
        tick: DateTime<Utc>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO schedule_tick (digest, audience, last_tick) VALUES (?1, ?2, ?3)
             ON CONFLICT (digest, audience) DO UPDATE SET last_tick = MAX(last_tick, excluded.last_tick)",
            params![digest, audience, ts(tick)],
        )?;
        Ok(())
    }

    /// When the earliest deferred delivery of any edition comes due.
    pub fn next_deferred_due(&self) -> Result<Option<DateTime<Utc>>> {
        let next: Option<String> = self.conn.query_row(
            "SELECT MIN(next_attempt_at) FROM delivery WHERE status = 'deferred'",
            [],
            |r| r.get(0),
        )?;
        opt_ts(next)
    }

    /// Editions of a digest that still owe deliveries, oldest first.
    pub fn unfinished_editions(&self, digest: &str) -> Result<Vec<EditionRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{EDITION_SELECT} WHERE digest = ?1 AND finished_at IS NULL ORDER BY number"
        ))?;
        let rows: Vec<_> = stmt
            .query_map([digest], edition_raw)?
            .collect::<std::result::Result<_, _>>()?;
        rows.into_iter().map(edition_from_raw).collect()
    }

    /// Essays from `sources` first seen in `[from, to)`.
    pub fn essays_seen_between(
        &self,
        sources: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredEssay>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{ESSAY_SELECT} WHERE first_seen_at >= ?1 AND first_seen_at < ?2 AND retracted_at IS NULL ORDER BY id"
        ))?;
        let rows: Vec<StoredEssay> = stmt
            .query_map(params![ts(from), ts(to)], essay_raw)?
            .collect::<std::result::Result<Vec<_>, _>>()?
            .into_iter()
            .map(essay_from_raw)
            .collect::<Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter(|e| sources.contains(&e.essay.source))
            .collect())
    }

    /// Replies from `sources` first seen in `[from, to)`.
    pub fn replies_seen_between(
        &self,
        sources: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredReply>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{REPLY_SELECT} WHERE first_seen_at >= ?1 AND first_seen_at < ?2 AND retracted_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM essay e WHERE e.source = reply.source
                               AND e.key = reply.essay_key AND e.retracted_at IS NOT NULL)
             ORDER BY id"
        ))?;
        let rows: Vec<StoredReply> = stmt
            .query_map(params![ts(from), ts(to)], reply_raw)?
            .collect::<std::result::Result<Vec<_>, _>>()?
            .into_iter()
            .map(reply_from_raw)
            .collect::<Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter(|r| sources.contains(&r.reply.source))
            .collect())
    }

    /// Marks essays and replies (by row id) as retracted by their origin: no edition made
    /// after this carries them, nor the replies under such an essay.
    pub fn retract(&mut self, essays: &[i64], replies: &[i64], now: DateTime<Utc>) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut e = tx.prepare_cached("UPDATE essay SET retracted_at = ?2 WHERE id = ?1")?;
            for id in essays {
                e.execute(params![id, ts(now)])?;
            }
            let mut r = tx.prepare_cached("UPDATE reply SET retracted_at = ?2 WHERE id = ?1")?;
            for id in replies {
                r.execute(params![id, ts(now)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The fallback route a source last ran on, if any (`None`: its normal route).
    pub fn source_route(&self, source: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT route FROM source_state WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// The API root a source discovered, if any.
    pub fn source_api_root(&self, source: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT api_root FROM source_state WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Essays by (source, key), for showing replies under essays outside the edition.
    pub fn essays_by_key(&self, keys: &[(String, String)]) -> Result<Vec<StoredEssay>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{ESSAY_SELECT} WHERE source = ?1 AND key = ?2"))?;
        let mut out = Vec::new();
        for (source, key) in keys {
            if let Some(raw) = stmt.query_row(params![source, key], essay_raw).optional()? {
                out.push(essay_from_raw(raw)?);
            }
        }
        Ok(out)
    }

    /// Creates an edition with its frozen items and one pending delivery per subscriber,
    /// atomically. Returns `None` if one already exists for that digest and time.
    pub fn create_edition(
        &mut self,
        e: &NewEdition,
        now: DateTime<Utc>,
    ) -> Result<Option<EditionRow>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let number = e.number;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO edition (digest, number, scheduled_for, window_from, window_to, created_at, audience, more_essays)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![e.digest, number, ts(e.scheduled_for), ts(e.window_from), ts(e.window_to), ts(now), e.audience, e.more_essays as i64],
        )?;
        if inserted == 0 {
            return Ok(None);
        }
        let id = tx.last_insert_rowid();
        {
            let mut item = tx.prepare_cached(
                "INSERT INTO edition_item (edition_id, kind, item_id, position) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (pos, essay) in e.essays.iter().enumerate() {
                item.execute(params![id, "essay", essay, pos as i64])?;
            }
            for (pos, reply) in e.replies.iter().enumerate() {
                item.execute(params![id, "reply", reply, pos as i64])?;
            }
            let mut delivery = tx.prepare_cached(
                "INSERT OR IGNORE INTO delivery (edition_id, subscriber_id, threads) VALUES (?1, ?2, ?3)",
            )?;
            for s in &e.subscribers {
                let threads = e
                    .threads
                    .get(s)
                    .map(|t| t.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
                delivery.execute(params![id, s, threads])?;
            }
        }
        let row = tx.query_row(
            &format!("{EDITION_SELECT} WHERE id = ?1"),
            [id],
            edition_raw,
        )?;
        tx.commit()?;
        Ok(Some(edition_from_raw(row)?))
    }

    /// How many essays of its window an edition left out ("and N more").
    pub fn edition_more_essays(&self, edition_id: i64) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            "SELECT more_essays FROM edition WHERE id = ?1",
            [edition_id],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The essays and replies frozen into an edition, in their stored order.
    pub fn edition_items(&self, edition_id: i64) -> Result<(Vec<StoredEssay>, Vec<StoredReply>)> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{ESSAY_SELECT} JOIN edition_item i ON i.kind = 'essay' AND i.item_id = essay.id
             WHERE i.edition_id = ?1 ORDER BY i.position"
        ))?;
        let essays = stmt
            .query_map([edition_id], essay_raw)?
            .collect::<std::result::Result<Vec<_>, _>>()?
            .into_iter()
            .map(essay_from_raw)
            .collect::<Result<_>>()?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "{REPLY_SELECT} JOIN edition_item i ON i.kind = 'reply' AND i.item_id = reply.id
             WHERE i.edition_id = ?1 ORDER BY i.position"
        ))?;
        let replies = stmt
            .query_map([edition_id], reply_raw)?
            .collect::<std::result::Result<Vec<_>, _>>()?
            .into_iter()
            .map(reply_from_raw)
            .collect::<Result<_>>()?;
        Ok((essays, replies))
    }

    /// Deliveries of an edition that are owed now: pending, deferred and due, or left
    /// `sending` by a process that `is_dead` says is gone. In row order (for a new
    /// edition, address order).
    pub fn pending_deliveries(
        &self,
        edition_id: i64,
        now: DateTime<Utc>,
        is_dead: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<PendingDelivery>> {
        Ok(self
            .pending_page(edition_id, now, is_dead, 0, usize::MAX)?
            .0)
    }

    /// The owed deliveries among the next `limit` candidate rows with id above `after`,
    /// and the last id looked at (`None` once there are no more): a large edition is
    /// read a page at a time instead of held in memory whole. (The unary `+` keeps
    /// SQLite on the rowid range instead of sorting the whole edition for every page.)
    pub fn pending_page(
        &self,
        edition_id: i64,
        now: DateTime<Utc>,
        is_dead: &dyn Fn(&str) -> bool,
        after: i64,
        limit: usize,
    ) -> Result<(Vec<PendingDelivery>, Option<i64>)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.attempts, s.id, s.email, s.name, COALESCE(s.chosen_timezone, s.timezone),
                    CASE WHEN s.status = 'active' AND NOT EXISTS (SELECT 1 FROM subscription w
                              JOIN edition e ON e.id = d.edition_id
                              WHERE w.subscriber_id = s.id AND w.digest = e.digest)
                         THEN 'unsubscribed' ELSE s.status END,
                    d.status, d.claimed_by, d.threads
             FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id
             WHERE +d.edition_id = ?1 AND d.id > ?3 AND (d.status = 'pending'
                OR (d.status = 'deferred' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?2))
                OR d.status = 'sending')
             ORDER BY d.id LIMIT ?4",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![edition_id, ts(now), after, limit], |r| {
            Ok((
                PendingDelivery {
                    id: r.get(0)?,
                    attempts: r.get(1)?,
                    subscriber: SubscriberRow {
                        id: r.get(2)?,
                        email: r.get(3)?,
                        name: r.get(4)?,
                        timezone: r.get(5)?,
                        status: r.get(6)?,
                    },
                    stale_claim: None,
                    threads: r
                        .get::<_, Option<String>>(9)?
                        .map(|t| t.split(',').filter_map(|n| n.parse().ok()).collect()),
                },
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        let mut last = None;
        for row in rows {
            let (mut pending, status, claimed_by) = row?;
            last = Some(pending.id);
            if status == "sending" {
                if !claimed_by.as_deref().is_none_or(is_dead) {
                    continue;
                }
                // Claims are never NULL once set; an empty token stands for "none".
                pending.stale_claim = Some(claimed_by.unwrap_or_default());
            }
            out.push(pending);
        }
        Ok((out, last))
    }

    /// The smallest delivery row id of an edition (where paging through it starts).
    pub fn first_delivery_id(&self, edition_id: i64) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT MIN(id) FROM delivery WHERE edition_id = ?1",
            [edition_id],
            |r| r.get(0),
        )?)
    }

    /// How many deliveries of an edition are owed now (as [`Store::pending_deliveries`]
    /// would list them), without reading them.
    pub fn owed_count(
        &self,
        edition_id: i64,
        now: DateTime<Utc>,
        is_dead: &dyn Fn(&str) -> bool,
    ) -> Result<usize> {
        let due: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM delivery WHERE edition_id = ?1 AND (status = 'pending'
                OR (status = 'deferred' AND (next_attempt_at IS NULL OR next_attempt_at <= ?2)))",
            params![edition_id, ts(now)],
            |r| r.get(0),
        )?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT claimed_by FROM delivery WHERE edition_id = ?1 AND status = 'sending'",
        )?;
        let mut stale = 0usize;
        for claim in stmt.query_map([edition_id], |r| r.get::<_, Option<String>>(0))? {
            if claim?.as_deref().is_none_or(is_dead) {
                stale += 1;
            }
        }
        Ok(usize::try_from(due).unwrap_or(0) + stale)
    }

    /// How many deliveries of an edition have this status.
    pub fn count_deliveries(&self, edition_id: i64, status: &str) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM delivery WHERE edition_id = ?1 AND status = ?2",
            params![edition_id, status],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// When the earliest deferred delivery of an edition comes due.
    pub fn next_deferred_at(&self, edition_id: i64) -> Result<Option<DateTime<Utc>>> {
        let next: Option<String> = self.conn.query_row(
            "SELECT MIN(next_attempt_at) FROM delivery WHERE edition_id = ?1 AND status = 'deferred'",
            [edition_id],
            |r| r.get(0),
        )?;
        opt_ts(next)
    }

    /// Records finished attempts and claims the next deliveries, in one durable
    /// transaction. A claim marks the row in flight (attempts + 1) before the transport
    /// sees it; it is refused (`false`) if another process settled the row meanwhile.
    pub fn step(
        &mut self,
        settle: &[Outcome],
        claims: &[Claim],
        claimant: &str,
    ) -> Result<Vec<bool>> {
        if settle.is_empty() && claims.is_empty() {
            return Ok(Vec::new());
        }
        // Group commit (ARCHITECTURE.md): every commit reaches the OS, which is all a
        // process crash needs; a sync to disk every GROUP_COMMIT (and at the end of a
        // run, see `sync_next_step`) bounds what a power loss can undo. An fsync per
        // step would cap delivery near the disk's sync rate.
        let durable = self
            .last_durable
            .is_none_or(|t| t.elapsed() >= GROUP_COMMIT);
        if !durable {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let claimed = self.step_tx(settle, claims, claimant);
        if durable {
            if claimed.is_ok() {
                self.last_durable = Some(std::time::Instant::now());
                self.unsynced = false;
            }
        } else {
            self.unsynced |= claimed.is_ok();
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        claimed
    }

    /// Settles the last outcomes of a run and syncs everything `step` left in the OS.
    pub fn step_and_sync(&mut self, settle: &[Outcome], claimant: &str) -> Result<()> {
        self.last_durable = None;
        if !settle.is_empty() {
            self.step(settle, &[], claimant)?;
        } else if self.unsynced {
            // A checkpoint syncs the write-ahead log before copying it back.
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            self.unsynced = false;
        }
        Ok(())
    }

    fn step_tx(
        &mut self,
        settle: &[Outcome],
        claims: &[Claim],
        claimant: &str,
    ) -> Result<Vec<bool>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut sent = tx.prepare_cached(
                "UPDATE delivery SET status = 'sent', sent_at = ?2, last_reply = ?3, next_attempt_at = NULL, claimed_by = NULL,
                   attempts = attempts + 1 WHERE id = ?1",
            )?;
            // Attempts count finished tries: a claim spends none, so a crash (a row left
            // in flight) or a relay outage never uses one up.
            let mut unsent = tx.prepare_cached(
                "UPDATE delivery SET status = ?2, last_reply = ?3, next_attempt_at = ?4, claimed_by = NULL,
                   attempts = attempts + 1 WHERE id = ?1",
            )?;
            let mut requeue = tx.prepare_cached(
                "UPDATE delivery SET status = 'deferred', last_reply = ?2, next_attempt_at = ?3, claimed_by = NULL WHERE id = ?1",
            )?;
            let mut aside = tx.prepare_cached(
                "UPDATE delivery SET status = 'suppressed', last_reply = ?2, next_attempt_at = NULL, claimed_by = NULL WHERE id = ?1",
            )?;
            let mut bounce = tx.prepare_cached(
                "UPDATE subscriber SET status = 'bounced', changed_at = ?2 WHERE id = ?1 AND status = 'active'",
            )?;
            for o in settle {
                match o {
                    Outcome::Sent { id, at, reply } => {
                        sent.execute(params![id, ts(*at), reply])?;
                    }
                    Outcome::Deferred { id, reply, next_at } => {
                        unsent.execute(params![id, "deferred", reply, ts(*next_at)])?;
                    }
                    Outcome::Requeued { id, reply, next_at } => {
                        requeue.execute(params![id, reply, ts(*next_at)])?;
                    }
                    Outcome::Failed { id, reply } => {
                        unsent.execute(params![id, "failed", reply, Option::<String>::None])?;
                    }
                    Outcome::Bounced {
                        id,
                        subscriber_id,
                        reply,
                        at,
                    } => {
                        unsent.execute(params![id, "failed", reply, Option::<String>::None])?;
                        bounce.execute(params![subscriber_id, ts(*at)])?;
                    }
                    Outcome::Suppressed { id, reason } => {
                        aside.execute(params![id, reason])?;
                    }
                }
            }
        }
        let mut claimed = Vec::with_capacity(claims.len());
        {
            // A pending or deferred row, or one still held by the dead claim we saw: never a
            // row another live process has claimed since we listed it.
            let mut claim = tx.prepare_cached(
                "UPDATE delivery SET status = 'sending', message_id = ?2, claimed_by = ?3
                 WHERE id = ?1 AND (status IN ('pending', 'deferred')
                    OR (status = 'sending' AND ?4 IS NOT NULL AND COALESCE(claimed_by, '') = ?4))",
            )?;
            for c in claims {
                claimed.push(
                    claim.execute(params![c.id, c.message_id, claimant, c.stale_claim])? == 1,
                );
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Requeues an edition's failed deliveries (those whose last reply contains `reason`,
    /// or the one to `address`) as pending with no attempts, and reopens the edition.
    /// Rows of subscribers who are no longer active are left failed and counted.
    /// Returns (requeued, refused).
    pub fn requeue_failed(
        &mut self,
        edition_id: i64,
        reason: Option<&str>,
        address: Option<&str>,
    ) -> Result<(usize, usize)> {
        let tx = self.conn.transaction()?;
        let filter = "d.edition_id = ?1 AND d.status = 'failed'
             AND (?2 IS NULL OR instr(COALESCE(d.last_reply, ''), ?2) > 0)
             AND (?3 IS NULL OR s.email = ?3 COLLATE NOCASE)";
        let refused: i64 = tx.query_row(
            &format!(
                "SELECT COUNT(*) FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id
                 WHERE {filter} AND s.status <> 'active'"
            ),
            params![edition_id, reason, address],
            |r| r.get(0),
        )?;
        let requeued = tx.execute(
            &format!(
                "UPDATE delivery SET status = 'pending', attempts = 0, next_attempt_at = NULL, claimed_by = NULL
                 WHERE id IN (SELECT d.id FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id
                              WHERE {filter} AND s.status = 'active')"
            ),
            params![edition_id, reason, address],
        )?;
        if requeued > 0 {
            tx.execute(
                "UPDATE edition SET finished_at = NULL WHERE id = ?1",
                [edition_id],
            )?;
        }
        tx.commit()?;
        Ok((requeued, usize::try_from(refused).unwrap_or(0)))
    }

    /// Marks an edition finished once no delivery is left pending, in flight or deferred.
    pub fn finish_edition_if_done(&mut self, edition_id: i64, now: DateTime<Utc>) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE edition SET finished_at = ?2 WHERE id = ?1 AND finished_at IS NULL AND NOT EXISTS
               (SELECT 1 FROM delivery WHERE edition_id = ?1 AND status IN ('pending', 'sending', 'deferred'))",
            params![edition_id, ts(now)],
        )?;
        Ok(n > 0)
    }

    /// The newest edition of a digest with its counts.
    pub fn last_edition_summary(&self, digest: &str) -> Result<Option<EditionSummary>> {
        match self.last_edition(digest)? {
            Some(e) => Ok(Some(self.summarize(e)?)),
            None => Ok(None),
        }
    }

    /// The newest editions (all digests), with item and delivery counts.
    pub fn editions(&self, limit: usize) -> Result<Vec<EditionSummary>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{EDITION_SELECT} ORDER BY created_at DESC, id DESC LIMIT ?1"
        ))?;
        let rows: Vec<_> = stmt
            .query_map([limit as i64], edition_raw)?
            .collect::<std::result::Result<_, _>>()?;
        rows.into_iter()
            .map(|raw| self.summarize(edition_from_raw(raw)?))
            .collect()
    }

    fn summarize(&self, edition: EditionRow) -> Result<EditionSummary> {
        let count = |kind: &str| -> Result<i64> {
            Ok(self.conn.query_row(
                "SELECT COUNT(*) FROM edition_item WHERE edition_id = ?1 AND kind = ?2",
                params![edition.id, kind],
                |r| r.get(0),
            )?)
        };
        let essays = count("essay")?;
        let replies = count("reply")?;
        let mut deliveries = [
            "pending",
            "sending",
            "sent",
            "deferred",
            "failed",
            "suppressed",
        ]
        .map(|s| (s.to_owned(), 0));
        for d in deliveries.iter_mut() {
            d.1 = self.conn.query_row(
                "SELECT COUNT(*) FROM delivery WHERE edition_id = ?1 AND status = ?2",
                params![edition.id, d.0],
                |r| r.get(0),
            )?;
        }
        Ok(EditionSummary {
            edition,
            essays,
            replies,
            deliveries,
        })
    }
}

const ESSAY_SELECT: &str = "SELECT essay.id, essay.source, essay.key, essay.title, essay.author, essay.url,
    essay.published_at, essay.updated_at, essay.summary, essay.content_html, essay.first_seen_at, essay.backfill, essay.origin_id FROM essay";
const REPLY_SELECT: &str = "SELECT reply.id, reply.source, reply.key, reply.essay_key, reply.parent_key, reply.author,
    reply.url, reply.published_at, reply.content_html, reply.first_seen_at, reply.backfill, reply.origin_id FROM reply";
const EDITION_SELECT: &str = "SELECT id, digest, number, scheduled_for, window_from, window_to, created_at, finished_at, audience FROM edition";

type EssayRaw = (i64, Essay, Option<String>, Option<String>, String, bool);

fn essay_raw(r: &Row<'_>) -> rusqlite::Result<EssayRaw> {
    Ok((
        r.get(0)?,
        Essay {
            source: r.get(1)?,
            key: r.get(2)?,
            title: r.get(3)?,
            author: r.get(4)?,
            url: r.get(5)?,
            published_at: None,
            updated_at: None,
            summary: r.get(8)?,
            content_html: r.get(9)?,
            origin_id: r.get(12)?,
        },
        r.get(6)?,
        r.get(7)?,
        r.get(10)?,
        r.get(11)?,
    ))
}

fn essay_from_raw(
    (id, mut essay, published, updated, seen, backfill): EssayRaw,
) -> Result<StoredEssay> {
    essay.published_at = opt_ts(published)?;
    essay.updated_at = opt_ts(updated)?;
    Ok(StoredEssay {
        id,
        first_seen_at: parse_ts(&seen)?,
        backfill,
        essay,
    })
}

type ReplyRaw = (i64, Reply, Option<String>, String, bool);

fn reply_raw(r: &Row<'_>) -> rusqlite::Result<ReplyRaw> {
    Ok((
        r.get(0)?,
        Reply {
            source: r.get(1)?,
            key: r.get(2)?,
            essay_key: r.get(3)?,
            parent_key: r.get(4)?,
            author: r.get(5)?,
            url: r.get(6)?,
            published_at: None,
            content_html: r.get(8)?,
            origin_id: r.get(11)?,
        },
        r.get(7)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn reply_from_raw((id, mut reply, published, seen, backfill): ReplyRaw) -> Result<StoredReply> {
    reply.published_at = opt_ts(published)?;
    Ok(StoredReply {
        id,
        first_seen_at: parse_ts(&seen)?,
        backfill,
        reply,
    })
}

type EditionRaw = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
);

fn edition_raw(r: &Row<'_>) -> rusqlite::Result<EditionRaw> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn edition_from_raw(
    (id, digest, number, sched, from, to, created, finished, audience): EditionRaw,
) -> Result<EditionRow> {
    Ok(EditionRow {
        id,
        digest,
        audience,
        number,
        scheduled_for: parse_ts(&sched)?,
        window_from: parse_ts(&from)?,
        window_to: parse_ts(&to)?,
        created_at: parse_ts(&created)?,
        finished_at: opt_ts(finished)?,
    })
}

fn subscriber_row(r: &Row<'_>) -> rusqlite::Result<SubscriberRow> {
    Ok(SubscriberRow {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        timezone: r.get(3)?,
        status: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_address;
    use chrono::TimeZone;

    fn store_with_one_delivery() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap();
        store
            .sync_subscribers(
                &[config::Subscriber {
                    email: parse_address("a@example.org").unwrap(),
                    name: None,
                    digests: vec!["d".into()],
                    timezone: None,
                }],
                now,
            )
            .unwrap();
        let sub = store.active_subscribers("d").unwrap()[0].id;
        let ed = store
            .create_edition(
                &NewEdition {
                    digest: "d".into(),
                    audience: String::new(),
                    number: 1,
                    scheduled_for: now,
                    window_from: now,
                    window_to: now,
                    essays: vec![],
                    replies: vec![],
                    subscribers: vec![sub],
                    more_essays: 0,
                    threads: Default::default(),
                },
                now,
            )
            .unwrap()
            .unwrap();
        (dir, store, ed.id)
    }

    fn claim(id: i64, stale: Option<&str>) -> Claim {
        Claim {
            id,
            message_id: "<m@x>".into(),
            stale_claim: stale.map(str::to_owned),
        }
    }

    #[test]
    fn two_processes_opening_a_new_database_at_once_migrate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.db");
        let opened: Vec<_> = (0..4)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || Store::open(&p).map(|_| ()))
            })
            .collect();
        for o in opened {
            o.join().unwrap().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let v: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_row_claimed_by_a_live_process_is_never_claimed_again() {
        let (_dir, mut store, ed) = store_with_one_delivery();
        let now = crate::time::now();
        let listed = store.pending_deliveries(ed, now, &|_| false).unwrap();
        assert_eq!(listed.len(), 1);
        // Another process claims it between our listing and our claim.
        assert_eq!(
            store
                .step(&[], &[claim(listed[0].id, None)], "1:other")
                .unwrap(),
            vec![true]
        );
        assert_eq!(
            store
                .step(
                    &[],
                    &[claim(listed[0].id, listed[0].stale_claim.as_deref())],
                    "2:us"
                )
                .unwrap(),
            vec![false]
        );
        // While that process lives, the row is not even listed.
        assert!(store
            .pending_deliveries(ed, now, &|_| false)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_dead_processs_row_is_taken_over_once() {
        let (_dir, mut store, ed) = store_with_one_delivery();
        let now = crate::time::now();
        let id = store.pending_deliveries(ed, now, &|_| false).unwrap()[0].id;
        store.step(&[], &[claim(id, None)], "1:dead").unwrap();
        let listed = store
            .pending_deliveries(ed, now, &|c| c == "1:dead")
            .unwrap();
        assert_eq!(listed[0].stale_claim.as_deref(), Some("1:dead"));
        let stale = listed[0].stale_claim.clone();
        assert_eq!(
            store
                .step(&[], &[claim(id, stale.as_deref())], "2:a")
                .unwrap(),
            vec![true]
        );
        // A second taker with the same stale view loses.
        assert_eq!(
            store
                .step(&[], &[claim(id, stale.as_deref())], "3:b")
                .unwrap(),
            vec![false]
        );
    }
}
