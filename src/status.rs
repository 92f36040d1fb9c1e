//! What an operator needs to see at a glance (`gazette status`): per digest its schedule,
//! next fire times (in its zone and UTC), last edition and what is still owed; per source
//! its last gather and error. Reads the store; changes nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::schedule;
use crate::store::{Store, StoreError};

/// The whole status report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Per digest.
    pub digests: Vec<DigestStatus>,
    /// Per source.
    pub sources: Vec<SourceStatus>,
    /// Deliveries pending or in flight, across editions.
    pub pending: i64,
    /// Deliveries deferred, across editions.
    pub deferred: i64,
    /// When the earliest deferred delivery is due.
    pub next_retry: Option<DateTime<Utc>>,
    /// Essays followed, counted once per reader and essay.
    pub follows: i64,
    /// Readers following at least one essay.
    pub following_readers: i64,
    /// Mail read by `gazette inbound`, by kind.
    pub inbound: crate::store::InboundCounts,
}

/// One digest.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DigestStatus {
    /// Name.
    pub name: String,
    /// The cron expression as written.
    pub schedule: String,
    /// Its time zone.
    pub timezone: String,
    /// The next three fire times, UTC.
    pub next: Vec<DateTime<Utc>>,
    /// The same, as local time in the digest's zone.
    pub next_local: Vec<String>,
    /// The newest edition, if any.
    pub last_edition: Option<EditionStatus>,
    /// For a local-time digest, each readers' zone and its next fire time (UTC).
    pub audiences: Vec<AudienceStatus>,
    /// "all" or "followed": which replies a copy carries.
    pub replies: String,
    /// The public archive's address, for a digest with `archive = true`.
    pub archive_url: Option<String>,
}

/// One time zone of a local-time digest's readers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AudienceStatus {
    /// The IANA zone.
    pub timezone: String,
    /// Its next fire time, UTC.
    pub next: Option<DateTime<Utc>>,
    /// The same, as local time in that zone.
    pub next_local: Option<String>,
}

/// The newest edition of a digest.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EditionStatus {
    /// Its number.
    pub number: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Whether every delivery is settled.
    pub finished: bool,
    /// Deliveries by status.
    pub deliveries: std::collections::BTreeMap<String, i64>,
}

/// One source.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceStatus {
    /// Name.
    pub name: String,
    /// Last gather attempt.
    pub last_gathered_at: Option<DateTime<Utc>>,
    /// Last success.
    pub last_ok_at: Option<DateTime<Utc>>,
    /// "ok", "failed" or "never gathered".
    pub result: String,
    /// The last error, if the last gather failed.
    pub last_error: Option<String>,
    /// Replies kept until their essay is known.
    pub unplaced: i64,
    /// The fallback route the last gather ran on (e.g. feeds for a WordPress REST API
    /// that is off); `None` on the normal route.
    pub route: Option<String>,
    /// New essays and replies in the last success.
    pub last_new: (i64, i64),
}

/// Takes the status. Without a database yet, everything is empty but the schedules.
pub fn status(config: &Config, now: DateTime<Utc>) -> Result<Status, StoreError> {
    let store = if config.state.exists() {
        Some(Store::connect(&config.state)?)
    } else {
        None
    };
    let mut digests = Vec::new();
    for d in &config.digests {
        let next: Vec<DateTime<Utc>> = schedule::fire_times(&d.schedule, d.timezone, now)
            .take(3)
            .collect();
        let last = match &store {
            Some(s) => s.last_edition_summary(&d.name)?,
            None => None,
        };
        let zones = match &store {
            Some(s) if d.local_time => crate::pipeline::audiences(s, d)?,
            _ => Vec::new(),
        };
        let audiences = zones
            .into_iter()
            .filter_map(|z| z.parse::<chrono_tz::Tz>().ok())
            .map(|tz| {
                let next = schedule::fire_times(&d.schedule, tz, now).next();
                AudienceStatus {
                    timezone: tz.name().to_owned(),
                    next,
                    next_local: next
                        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()),
                }
            })
            .collect();
        digests.push(DigestStatus {
            audiences,
            replies: match d.replies {
                crate::config::Replies::All => "all".into(),
                crate::config::Replies::Followed => "followed".into(),
            },
            archive_url: config
                .web
                .as_ref()
                .filter(|_| d.archive)
                .map(|w| crate::web::archive_url(&w.base_url, &d.name, None)),
            name: d.name.clone(),
            schedule: d.schedule_text.clone(),
            timezone: d.timezone.name().to_owned(),
            next_local: next
                .iter()
                .map(|t| {
                    t.with_timezone(&d.timezone)
                        .format("%Y-%m-%d %H:%M %Z")
                        .to_string()
                })
                .collect(),
            next,
            last_edition: last.map(|e| EditionStatus {
                number: e.edition.number,
                created_at: e.edition.created_at,
                finished: e.edition.finished_at.is_some(),
                deliveries: e.deliveries.into_iter().filter(|(_, n)| *n > 0).collect(),
            }),
        });
    }
    let mut sources = Vec::new();
    for src in &config.sources {
        let state = match &store {
            Some(s) => s.source_state(src.name())?,
            None => None,
        };
        sources.push(match state {
            Some(st) => SourceStatus {
                name: src.name().to_owned(),
                result: if st.last_error.is_some() {
                    "failed"
                } else {
                    "ok"
                }
                .into(),
                last_gathered_at: st.last_gathered_at,
                last_ok_at: st.last_ok_at,
                last_error: st.last_error,
                route: st.route,
                unplaced: st.unplaced,
                last_new: (st.last_new_essays, st.last_new_replies),
            },
            None => SourceStatus {
                name: src.name().to_owned(),
                last_gathered_at: None,
                last_ok_at: None,
                result: "never gathered".into(),
                last_error: None,
                route: None,
                unplaced: 0,
                last_new: (0, 0),
            },
        });
    }
    let (pending, deferred, next_retry) = match &store {
        Some(s) => s.owed()?,
        None => (0, 0, None),
    };
    let (follows, following_readers) = match &store {
        Some(s) => s.follow_figures()?,
        None => (0, 0),
    };
    let inbound = match &store {
        Some(s) => s.inbound_counts()?,
        None => Default::default(),
    };
    Ok(Status {
        at: now,
        inbound,
        digests,
        sources,
        pending,
        deferred,
        next_retry,
        follows,
        following_readers,
    })
}
