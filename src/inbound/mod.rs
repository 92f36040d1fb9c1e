//! Mail that comes back (`gazette inbound`): bounces mark a reader bounced (a permanent
//! failure at once, temporary ones after `delivery.soft_bounce_limit` within
//! `delivery.soft_bounce_window`), complaints unsubscribe them as "complained", and a
//! message to a `List-Unsubscribe` mailto address takes them off that digest. Anything
//! else, and anything that cannot be matched to a message Gazette sent, changes nothing
//! and is counted.
//!
//! [`report`] reads a message (plain functions); [`settle`] looks it up and records it;
//! [`maildir`] walks a Maildir's `new/` folder.

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::store::{InboundEffect, InboundRow, SentCopy, Store, StoreError};
use crate::token::Signer;

pub mod maildir;
pub mod report;

pub use report::{read, Clues, Read, Said};

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A permanent failure: the reader is now bounced.
    Bounce,
    /// A temporary failure, counted (and the reader bounced once there are enough).
    SoftBounce,
    /// A complaint: the reader is unsubscribed as "complained".
    Complaint,
    /// A mailto unsubscribe with a genuine tag: the reader left that digest.
    Unsubscribe,
    /// A mailto unsubscribe whose tag is not genuine: nothing changed.
    Forged,
    /// A report about a message Gazette did not send (or cannot find): nothing changed.
    Unmatched,
    /// Anything else: nothing changed.
    Other,
    /// Read before (same Message-ID): nothing changed again.
    Duplicate,
}

impl Kind {
    /// The name used in the store, `status`, `/metrics` and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bounce => "bounce",
            Kind::SoftBounce => "soft_bounce",
            Kind::Complaint => "complaint",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Forged => "forged",
            Kind::Unmatched => "unmatched",
            Kind::Other => "other",
            Kind::Duplicate => "duplicate",
        }
    }

    /// Whether the message was one Gazette acts on (a Maildir marks it seen).
    pub fn recognised(self) -> bool {
        !matches!(self, Kind::Other)
    }
}

/// The outcome of one message, for the log and the summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    /// What it was taken for.
    pub kind: Kind,
    /// The reader it concerned, if one was found.
    pub email: Option<String>,
    /// The digest it concerned, if known.
    pub digest: Option<String>,
    /// Status code and diagnostic, feedback type, or why nothing was done.
    pub detail: String,
    /// Whether a subscriber's status or digests changed.
    pub changed: bool,
}

/// Reads one message, matches it to what Gazette sent and records it (once).
pub fn settle(
    store: &mut Store,
    config: &Config,
    signer: &Signer,
    raw: &[u8],
    recipient: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Outcome, StoreError> {
    let read = report::read(raw, recipient);
    let digests: Vec<&str> = config.digests.iter().map(|d| d.name.as_str()).collect();
    let from_domain = config.site.from.email.domain().to_owned();
    let mut outcome = Outcome {
        kind: Kind::Other,
        email: None,
        digest: None,
        detail: String::new(),
        changed: false,
    };
    let mut copy: Option<SentCopy> = None;
    let effect = match &read.said {
        Said::Failure {
            permanent,
            status,
            diagnostic,
            recipients,
        } => {
            copy = find_copy(
                store,
                &read.clues,
                &from_domain,
                signer,
                &digests,
                recipients,
            )?;
            outcome.detail = if diagnostic.is_empty() {
                status.clone()
            } else {
                format!("{status} {diagnostic}")
            };
            match (&copy, permanent) {
                (None, _) => {
                    outcome.kind = Kind::Unmatched;
                    outcome.detail = format!(
                        "a delivery failure ({}) that names no message Gazette sent",
                        outcome.detail
                    );
                    InboundEffect::Nothing
                }
                (Some(_), true) => {
                    outcome.kind = Kind::Bounce;
                    InboundEffect::Bounce
                }
                (Some(_), false) => {
                    outcome.kind = Kind::SoftBounce;
                    let window = chrono::Duration::from_std(config.delivery.soft_bounce_window)
                        .unwrap_or(chrono::Duration::days(30));
                    InboundEffect::SoftBounce {
                        limit: config.delivery.soft_bounce_limit,
                        since: now - window,
                    }
                }
            }
        }
        Said::Complaint { feedback_type } => {
            outcome.detail = format!("feedback type {feedback_type}");
            // Only a reader's complaint about the mail unsubscribes; "not-spam",
            // "auth-failure" (DMARC) and "virus" reports are counted.
            if !matches!(feedback_type.as_str(), "abuse" | "fraud") {
                outcome.detail = format!("a {feedback_type} report, not a complaint");
                InboundEffect::Nothing
            } else {
                copy = find_copy(store, &read.clues, &from_domain, signer, &digests, &[])?;
                if copy.is_some() {
                    outcome.kind = Kind::Complaint;
                    InboundEffect::Complain
                } else {
                    outcome.kind = Kind::Unmatched;
                    outcome.detail = "a complaint that names no message Gazette sent".into();
                    InboundEffect::Nothing
                }
            }
        }
        Said::Unsubscribe { tag } => match signer.verify_mail_tag(tag, &digests) {
            Some(claims) => match store.profile(claims.subscriber)? {
                Some(p) => {
                    outcome.kind = Kind::Unsubscribe;
                    outcome.email = Some(p.email);
                    outcome.digest = Some(claims.digest.clone());
                    outcome.detail = format!("asked to leave {}", claims.digest);
                    copy = Some(SentCopy {
                        delivery: 0,
                        subscriber: claims.subscriber,
                        email: outcome.email.clone().unwrap_or_default(),
                        digest: claims.digest.clone(),
                    });
                    InboundEffect::Leave(claims.digest)
                }
                None => {
                    outcome.kind = Kind::Unmatched;
                    outcome.detail = "an unsubscribe request for a reader no longer known".into();
                    InboundEffect::Nothing
                }
            },
            None => {
                outcome.kind = Kind::Forged;
                outcome.detail = format!(
                    "an unsubscribe request whose address tag ({}) was not made by this Gazette",
                    tag.chars().take(80).collect::<String>()
                );
                InboundEffect::Nothing
            }
        },
        Said::Other(why) => {
            outcome.detail = why.clone();
            InboundEffect::Nothing
        }
    };
    if let Some(c) = &copy {
        outcome.email = Some(c.email.clone());
        outcome.digest = Some(c.digest.clone());
    }
    let row = InboundRow {
        key: &read.key,
        kind: outcome.kind.as_str(),
        subscriber: copy.as_ref().map(|c| c.subscriber),
        delivery: copy.as_ref().map(|c| c.delivery).filter(|d| *d > 0),
        digest: outcome.digest.as_deref(),
        detail: &outcome.detail,
    };
    match store.settle_inbound(&row, &effect, now)? {
        None => {
            outcome.kind = Kind::Duplicate;
            outcome.changed = false;
        }
        Some(changed) => outcome.changed = changed,
    }
    Ok(outcome)
}

/// The delivery a report is about: by the VERP tag of the address it came to (or ARF's
/// Original-Mail-From), by the returned original's Message-ID, or by the unsubscribe tag
/// in the original's List-Unsubscribe. A match by Message-ID alone must agree with the
/// recipient the report names, when it names one.
fn find_copy(
    store: &Store,
    clues: &Clues,
    from_domain: &str,
    signer: &Signer,
    digests: &[&str],
    recipients: &[String],
) -> Result<Option<SentCopy>, StoreError> {
    for tag in &clues.verp_tags {
        if let Some(c) = store.copy_by_message_id(&format!("<{tag}@{from_domain}>"))? {
            return Ok(Some(c));
        }
    }
    for id in &clues.message_ids {
        if let Some(c) = store.copy_by_message_id(id)? {
            let email = c.email.to_ascii_lowercase();
            if recipients.is_empty() || recipients.contains(&email) {
                return Ok(Some(c));
            }
        }
    }
    for tag in &clues.mail_tags {
        if let Some(claims) = signer.verify_mail_tag(tag, digests) {
            if let Some(p) = store.profile(claims.subscriber)? {
                return Ok(Some(SentCopy {
                    delivery: 0,
                    subscriber: p.id,
                    email: p.email,
                    digest: claims.digest,
                }));
            }
        }
    }
    Ok(None)
}
