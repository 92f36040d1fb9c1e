//! The only code that touches the database: migrations, idempotent upserts, editions,
//! deliveries and subscribers. It stores and answers; it holds no business rules.
//!
//! Two backends behind one [`Store`]: a SQLite file (the default) and a PostgreSQL
//! server (`[state] url`), through [`db::Conn`]; every query below is written once.
//! SQLite runs in WAL mode with `synchronous=FULL`: a committed claim or settlement
//! survives a process crash and power loss (ARCHITECTURE.md, "Durability and speed of
//! the ledger"); PostgreSQL commits are durable as the server is configured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use db::{params, Conn, DbError, OptionalExtension, Row};
use rusqlite::{Connection, OpenFlags};

use crate::config;
use crate::source::http::Validators;
use crate::source::{Essay, Gathered, Reply};

mod archive;
mod content;
mod copy;
pub mod db;
mod follows;
mod inbound;
mod instances;
mod ledger;
mod sqlite;
use sqlite::{migrate_sqlite, open_reason, refuse_empty};
mod people;
mod web_state;
pub use follows::{EssayRef, Followed};
pub use inbound::{InboundCounts, InboundEffect, InboundRow, SentCopy};
pub use web_state::{Figures, Profile, Signup};

const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema2.sql"),
    include_str!("schema3.sql"),
    include_str!("schema4.sql"),
    include_str!("schema5.sql"),
    include_str!("schema6.sql"),
    include_str!("schema7.sql"),
    include_str!("schema8.sql"),
    include_str!("schema9.sql"),
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
    /// The PostgreSQL server could not be reached or refused the login.
    #[error("cannot open database {url}: {reason}")]
    Connect {
        /// The URL (no password).
        url: String,
        /// What the server or the network said, and what to check.
        reason: String,
    },
    /// A query failed.
    #[error("database error: {}", plain_sql(.0))]
    Sql(#[from] DbError),
    /// `store copy` found its destination unusable, or the copy did not check out.
    #[error("{0}")]
    Copy(String),
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

/// A query's failure in plain words where SQLite has a known cause.
fn plain_sql(e: &DbError) -> String {
    use rusqlite::ErrorCode as C;
    let DbError::Sqlite(e) = e else {
        return e.to_string();
    };
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

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(DbError::Sqlite(e))
    }
}

/// The ledger and archive: one connection, to a SQLite file or a PostgreSQL server.
pub struct Store {
    conn: Conn,
    /// When `step` last committed with a sync to disk (group commit).
    last_durable: Option<std::time::Instant>,
    /// A `step` has committed without a sync since.
    unsynced: bool,
    /// For PostgreSQL: this session's claim token, tied to an advisory lock it holds
    /// for as long as it lives (see `instances.rs`).
    session: Option<instances::Session>,
}

/// How long delivery outcomes may sit in the OS before a commit syncs them to disk.
/// Every commit survives a process crash; this bounds what a power loss can undo.
pub const GROUP_COMMIT: Duration = Duration::from_millis(100);

impl Store {
    /// Opens the configured store: the SQLite file, or a session on the PostgreSQL
    /// server; either way its schema is brought up to date.
    pub fn connect(state: &config::State) -> Result<Store> {
        match state {
            config::State::Sqlite(path) => Store::open(path),
            config::State::Postgres(pg) => Store::open_pg(pg),
        }
    }

    /// For a dry run or a preview: a scratch copy the run may change freely (SQLite in
    /// memory), so the real store is never touched.
    pub fn scratch_of(state: &config::State) -> Result<Store> {
        match state {
            config::State::Sqlite(path) => Store::scratch_copy(path),
            config::State::Postgres(pg) => {
                let src = Store::open_pg(pg)?;
                let mut dst = Store::memory()?;
                copy::copy_all(&src, &mut dst, &mut |_, _| {})?;
                Ok(dst)
            }
        }
    }

    /// An empty store in memory.
    pub fn memory() -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        migrate_sqlite(&mut conn, Path::new(":memory:"))?;
        Ok(Store::wrap(Conn::Sqlite(conn)))
    }

    fn wrap(conn: Conn) -> Store {
        Store {
            conn,
            last_durable: None,
            unsynced: false,
            session: None,
        }
    }

    /// Which backend this store is on.
    pub fn backend(&self) -> db::Backend {
        self.conn.backend()
    }

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
        let mut conn = Connection::open(path).map_err(wrap)?;
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
        migrate_sqlite(&mut conn, path)?;
        Ok(Store::wrap(Conn::Sqlite(conn)))
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
        migrate_sqlite(&mut conn, path)?;
        Ok(Store::wrap(Conn::Sqlite(conn)))
    }

    fn step_tx(
        &mut self,
        settle: &[Outcome],
        claims: &[Claim],
        claimant: &str,
        relaxed: bool,
    ) -> Result<Vec<bool>> {
        let tx = self.conn.transaction()?;
        if relaxed && tx.backend() == db::Backend::Postgres {
            tx.execute("SET LOCAL synchronous_commit TO OFF", [])?;
        }
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
                    OR (status = 'sending' AND CAST(?4 AS TEXT) IS NOT NULL AND COALESCE(claimed_by, '') = ?4))",
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

fn essay_raw(r: &Row<'_>) -> db::DbResult<EssayRaw> {
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

fn reply_raw(r: &Row<'_>) -> db::DbResult<ReplyRaw> {
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

fn edition_raw(r: &Row<'_>) -> db::DbResult<EditionRaw> {
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

fn subscriber_row(r: &Row<'_>) -> db::DbResult<SubscriberRow> {
    Ok(SubscriberRow {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        timezone: r.get(3)?,
        status: r.get(4)?,
    })
}

#[cfg(test)]
mod tests;
