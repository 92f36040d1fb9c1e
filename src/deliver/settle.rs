//! Settling: what each send's result becomes in the ledger. A relay-level failure is
//! requeued and opens the breaker; identical refusals before any acceptance are held as
//! suspects of a relay-wide refusal; everything else is sent, deferred, failed or
//! bounced for its recipient.

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::{backoff, Pacing, SendError, Tally};
use crate::store::{Outcome, PendingDelivery};

pub(super) async fn drain(
    in_flight: &mut JoinSet<(PendingDelivery, Result<String, SendError>)>,
    settle: &mut Vec<Outcome>,
    tally: &mut Tally,
    suspects: &mut Suspects,
    pacing: &Pacing,
) {
    while let Some(joined) = in_flight.join_next().await {
        record(joined, settle, tally, suspects, pacing);
    }
}

/// Permanent refusals held back while no message of the run has been accepted: if
/// several recipients are refused with the same words, it is the relay refusing (a
/// relay-wide `554 5.7.1`), not the recipients.
pub(super) type Suspects = Vec<(PendingDelivery, String)>;

/// How many recipients refused alike make a relay-wide refusal.
pub(super) const ALIKE: usize = 3;

/// A reply with the recipient's own address taken out, to compare refusals.
pub(super) fn alike(reply: &str, email: &str) -> String {
    reply.replace(email, "<recipient>")
}

/// The domain of an address, lower-cased.
pub(super) fn domain_of(email: &str) -> String {
    email
        .rsplit('@')
        .next()
        .unwrap_or(email)
        .to_ascii_lowercase()
}

/// Whether the held-back refusals look relay-wide: at least [`ALIKE`] of them, the same
/// words, for recipients at different domains (one domain's policy is that domain's).
pub(super) fn relay_wide(suspects: &Suspects) -> bool {
    let Some((r0, w0)) = suspects.first() else {
        return false;
    };
    let first = alike(w0, &r0.subscriber.email);
    let domains: std::collections::BTreeSet<String> = suspects
        .iter()
        .map(|(r, _)| domain_of(&r.subscriber.email))
        .collect();
    suspects.len() >= ALIKE
        && domains.len() >= ALIKE
        && suspects
            .iter()
            .all(|(r, why)| alike(why, &r.subscriber.email) == first)
}

/// Logs a failed delivery: the first few of a run at error level, the rest at debug
/// (the run's summary counts them by reason).
pub(super) fn log_failure(tally: &Tally, to: &str, reason: &str) {
    if tally.failed.len() < 5 {
        tracing::error!(to = %to, error = %reason, "Delivery failed.");
    } else {
        tracing::debug!(to = %to, error = %reason, "Delivery failed.");
    }
}

pub(super) fn fail_suspects(suspects: &mut Suspects, settle: &mut Vec<Outcome>, tally: &mut Tally) {
    for (row, reply) in suspects.drain(..) {
        log_failure(tally, &row.subscriber.email, &reply);
        tally
            .failed
            .push((row.subscriber.email.clone(), reply.clone()));
        settle.push(Outcome::Failed { id: row.id, reply });
    }
}

pub(super) fn requeue_suspects(
    suspects: &mut Suspects,
    settle: &mut Vec<Outcome>,
    tally: &mut Tally,
    pacing: &Pacing,
) {
    let next_at = crate::time::now() + chrono::Duration::from_std(pacing.pause).unwrap_or_default();
    for (row, reply) in suspects.drain(..) {
        tally.requeued += 1;
        settle.push(Outcome::Requeued {
            id: row.id,
            reply,
            next_at,
        });
    }
}

pub(super) fn record(
    joined: Result<(PendingDelivery, Result<String, SendError>), tokio::task::JoinError>,
    settle: &mut Vec<Outcome>,
    tally: &mut Tally,
    suspects: &mut Suspects,
    pacing: &Pacing,
) {
    let Ok((row, result)) = joined else {
        // A send task panicked: its row stays `sending` under our claim and is retried
        // by the next run, like any in-flight message after a crash.
        tracing::error!("A delivery task stopped unexpectedly.");
        return;
    };
    let now: DateTime<Utc> = crate::time::now();
    let attempt = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
    let email = row.subscriber.email.clone();
    let outcome = match result {
        Ok(reply) => {
            tally.sent += 1;
            tracing::debug!(to = %email, reply = %reply, "Delivered.");
            // The relay accepts mail: refusals held back were about their recipients.
            fail_suspects(suspects, settle, tally);
            Outcome::Sent {
                id: row.id,
                at: now,
                reply,
            }
        }
        Err(e) if e.is_relay_level() => {
            tally.requeued += 1;
            tally.paused.get_or_insert_with(|| e.to_string());
            Outcome::Requeued {
                id: row.id,
                reply: e.to_string(),
                next_at: now + chrono::Duration::from_std(pacing.pause).unwrap_or_default(),
            }
        }
        Err(e)
            if !e.is_transient() && !e.is_bounce() && tally.sent == 0 && !pacing.relay_proven =>
        {
            let reply = e.to_string();
            suspects.push((row, reply.clone()));
            let first = alike(&suspects[0].1, &suspects[0].0.subscriber.email);
            if relay_wide(suspects) {
                tally.paused.get_or_insert_with(|| {
                    format!("the relay refuses every message alike: {reply}")
                });
                requeue_suspects(suspects, settle, tally, pacing);
            } else if suspects
                .iter()
                .any(|(r, why)| alike(why, &r.subscriber.email) != first)
                || suspects.len() >= 2 * ALIKE
            {
                // Refusals that differ are the recipients' own.
                fail_suspects(suspects, settle, tally);
            }
            return;
        }
        Err(e) if e.is_bounce() => {
            tally.failed.push((email.clone(), e.to_string()));
            tally.bounced += 1;
            tracing::warn!(to = %email, error = %e, "Address does not exist; marked bounced.");
            Outcome::Bounced {
                id: row.id,
                subscriber_id: row.subscriber.id,
                reply: e.to_string(),
                at: now,
            }
        }
        Err(e)
            if e.is_transient()
                && now < pacing.give_up_at
                && pacing.max_attempts.is_none_or(|m| attempt < m) =>
        {
            let wait = backoff(pacing.retry_base, attempt);
            tally.deferred += 1;
            tracing::warn!(to = %email, attempt, retry_in_ms = wait.as_millis() as u64, error = %e, "Deferred.");
            Outcome::Deferred {
                id: row.id,
                reply: e.to_string(),
                next_at: now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero()),
            }
        }
        Err(e) => {
            let reply = if e.is_transient() {
                format!(
                    "{e}; given up: still failing past `delivery.retry_for` (or `max_attempts`)"
                )
            } else {
                e.to_string()
            };
            log_failure(tally, &email, &reply);
            tally.failed.push((email.clone(), reply.clone()));
            Outcome::Failed { id: row.id, reply }
        }
    };
    settle.push(outcome);
}
