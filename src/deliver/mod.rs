//! Builds each RFC 5322 message, hands it to a transport and records every outcome in the
//! ledger. It never decides who gets what: it is given the owed rows and a way to build
//! each one's message.
//!
//! The crash-safety rule: a row is durably claimed (`sending`) before its message
//! reaches the transport, and its outcome is committed together with the claim that
//! reuses its slot. So at most `concurrency` rows are ever `sending`, and after a crash
//! only those can go out twice — with the same Message-ID. Attempts count finished
//! tries, so a crash never uses one up.
//!
//! A failure of the transport itself (a relay that cannot be reached, answers 421 or
//! stalls, a full outbox disk), or the same refusal for every recipient (a relay-wide
//! `554 5.7.1 relay access denied`), is not the message's fault: the run stops claiming,
//! the rows go back to deferred without spending an attempt, and the edition waits
//! (a circuit breaker; the caller probes again later). Only a recipient-specific answer
//! can fail a message, and a transient one only once it is older than `retry_for`.

mod message;
mod settle;
mod smtp;
mod transport;

pub use message::{
    build_message, build_notice, dkim_signer, message_id, unsubscribe_mailto, Addressing,
    BuildError, Notice, Outgoing,
};
pub use transport::{SendError, Transport};

use std::collections::{HashSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::{Quota, RateLimiter};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::Rate;
use crate::store::{Claim, Outcome, PendingDelivery, Store, StoreError};
use settle::{drain, fail_suspects, log_failure, record, requeue_suspects, Suspects};

/// How fast and how persistently to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacing {
    /// Messages in flight at once.
    pub concurrency: usize,
    /// Most messages per period.
    pub rate: Option<Rate>,
    /// Attempts before a transient failure becomes final, if limited.
    pub max_attempts: Option<u32>,
    /// First retry delay, doubled per attempt, with jitter.
    pub retry_base: Duration,
    /// A transient failure after this time is final (the edition's age past `retry_for`).
    pub give_up_at: DateTime<Utc>,
    /// How long rows wait after the transport failed for everyone.
    pub pause: Duration,
    /// The relay already accepted a message of this edition: its refusals are about
    /// their recipients, never relay-wide.
    pub relay_proven: bool,
}

/// Counts of what one delivery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages the transport accepted.
    pub sent: usize,
    /// Messages to retry later.
    pub deferred: usize,
    /// Messages that failed for good, with the address and the reason.
    pub failed: Vec<(String, String)>,
    /// Of the failed, addresses that do not exist (now marked bounced).
    pub bounced: usize,
    /// Not sent: the subscriber left or bounced since the edition was made.
    pub suppressed: usize,
    /// The run was asked to stop before every row was claimed.
    pub stopped: bool,
    /// The transport failed for everyone: why. Rows were requeued, not failed.
    pub paused: Option<String>,
    /// Rows requeued because the transport failed for everyone.
    pub requeued: usize,
}

impl Tally {
    /// Adds another run's counts.
    pub fn add(&mut self, other: Tally) {
        self.sent += other.sent;
        self.deferred += other.deferred;
        self.failed.extend(other.failed);
        self.bounced += other.bounced;
        self.suppressed += other.suppressed;
        self.stopped |= other.stopped;
        self.requeued += other.requeued;
        if other.paused.is_some() {
            self.paused = other.paused;
        }
    }
}

/// Delivery stopped early; what was sent is recorded.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError<E: std::error::Error + 'static> {
    /// The ledger could not be written; nothing further was sent.
    #[error("delivery stopped, the ledger could not be updated: {0}")]
    Ledger(#[from] StoreError),
    /// A message could not be built; nothing further was sent.
    #[error(transparent)]
    Build(E),
    /// A rendering worker panicked; nothing further was sent.
    #[error("delivery stopped, a rendering worker failed: {0}")]
    Worker(String),
}

/// This process's claim token, `<pid>:<nonce>`.
pub fn claimant() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| format!("{}:{:016x}", std::process::id(), fastrand::u64(..)))
}

/// Whether the process holding a claim is gone (Linux: no /proc/<pid>), so its
/// in-flight rows may be retried.
pub fn claim_is_dead(token: &str) -> bool {
    if token == claimant() {
        return false;
    }
    match token.split(':').next().and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) if pid == std::process::id() => true,
        Some(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    // Jitter spreads retries so a recovering server is not hit by all of them at once.
    exp.mul_f64(0.75 + fastrand::f64() / 2.0)
}

/// Asks a delivery run to stop: claim nothing more, let the messages in flight finish
/// within `grace`, record what happened. Rows not claimed stay pending for the next run.
#[derive(Debug, Clone)]
pub struct StopSignal {
    rx: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
}

impl StopSignal {
    /// A signal set when `rx` turns true.
    pub fn new(rx: tokio::sync::watch::Receiver<bool>, grace: Duration) -> Self {
        StopSignal { rx, grace }
    }

    /// A signal that is never set (one-off commands stop with the process).
    pub fn never() -> Self {
        let (_, rx) = tokio::sync::watch::channel(false);
        StopSignal {
            rx,
            grace: Duration::ZERO,
        }
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        *self.rx.borrow()
    }

    /// The channel this signal watches.
    pub fn receiver(&self) -> tokio::sync::watch::Receiver<bool> {
        self.rx.clone()
    }
}

/// Makes one row's message; runs on worker threads, so it owns what it needs.
pub type Build<E> = Arc<dyn Fn(&PendingDelivery) -> Result<Outgoing, E> + Send + Sync>;

type Built<E> = (PendingDelivery, Option<Result<Outgoing, E>>);

/// The rows an edition owes, read from the store a page at a time, so an edition of
/// any size costs the same memory.
#[derive(Debug, Clone)]
pub struct Owed {
    edition: i64,
    now: DateTime<Utc>,
    after: i64,
    done: bool,
    total: usize,
    /// Where paging starts, and whether this pass over the edition found rows: on a
    /// shared store, rows another instance reserved and then left (it died) lie behind
    /// us, so a pass that found anything is followed by another from the start.
    first: i64,
    found: bool,
    /// Rows already handed out by this pass: a pass from the start again meets the
    /// ones still on their way (reserved by us, not yet claimed) and must skip them.
    given: HashSet<i64>,
    /// Whether pages reserve their rows for this instance (see [`Owed::peek`]).
    reserve: bool,
}

/// Rows read per page.
const PAGE: usize = 1024;

impl Owed {
    /// What `edition` owes at `now` (pending, deferred and due, or left in flight by a
    /// dead process), from its first row.
    pub fn new(store: &Store, edition: i64, now: DateTime<Utc>) -> Result<Owed, StoreError> {
        Ok(Owed {
            edition,
            now,
            // Older editions' rows come first in the table; start at this one's.
            after: store.first_delivery_id(edition)?.map_or(0, |id| id - 1),
            done: false,
            total: store.owed_count(edition, now, &claim_is_dead)?,
            first: store.first_delivery_id(edition)?.map_or(0, |id| id - 1),
            found: false,
            given: HashSet::new(),
            reserve: true,
        })
    }

    /// The same rows, only looked at: paging reserves nothing and reads the edition
    /// once (a check of every owed copy before any is sent).
    pub fn peek(&self) -> Owed {
        Owed {
            reserve: false,
            ..self.clone()
        }
    }

    /// How many rows were owed when this was made.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The next page of rows; empty once all were read.
    pub fn next_page(&mut self, store: &Store) -> Result<Vec<PendingDelivery>, StoreError> {
        while !self.done {
            let (mut rows, last) = store.pending_page(
                self.edition,
                self.now,
                &claim_is_dead,
                self.after,
                PAGE,
                self.reserve,
            )?;
            match last {
                Some(id) => self.after = id,
                None if self.found
                    && self.reserve
                    && store.backend() == crate::store::db::Backend::Postgres =>
                {
                    self.after = self.first;
                    self.found = false;
                }
                None => self.done = true,
            }
            rows.retain(|r| self.given.insert(r.id));
            if !rows.is_empty() {
                self.found = true;
                return Ok(rows);
            }
        }
        Ok(Vec::new())
    }
}

/// Why the next message could not be had.
enum Stall {
    Worker(tokio::task::JoinError),
    Ledger(StoreError),
}

/// Messages are rendered in chunks on the blocking pool, a few chunks ahead of the
/// claims: rendering uses every core while the ledger and the sockets are served here,
/// and only a page of rows and those chunks are ever in memory.
struct RenderAhead<E> {
    owed: Owed,
    queue: VecDeque<PendingDelivery>,
    rendering: VecDeque<JoinHandle<Vec<Built<E>>>>,
    ready: VecDeque<Built<E>>,
    build: Build<E>,
    chunk: usize,
    ahead: usize,
}

impl<E: Send + 'static> RenderAhead<E> {
    fn new(
        store: &Store,
        owed: Owed,
        build: Build<E>,
        concurrency: usize,
    ) -> Result<Self, StoreError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut r = RenderAhead {
            owed,
            queue: VecDeque::new(),
            rendering: VecDeque::new(),
            ready: VecDeque::new(),
            build,
            chunk: concurrency.clamp(8, 64),
            ahead: cores + 1,
        };
        r.refill(store)?;
        Ok(r)
    }

    fn refill(&mut self, store: &Store) -> Result<(), StoreError> {
        while self.rendering.len() < self.ahead {
            if self.queue.is_empty() {
                self.queue.extend(self.owed.next_page(store)?);
                if self.queue.is_empty() {
                    break;
                }
            }
            let take = self.chunk.min(self.queue.len());
            let rows: Vec<PendingDelivery> = self.queue.drain(..take).collect();
            let build = Arc::clone(&self.build);
            self.rendering
                .push_back(tokio::task::spawn_blocking(move || {
                    rows.into_iter()
                        .map(|row| {
                            // A subscriber who left since the edition was made gets nothing,
                            // so nothing is rendered for them.
                            let msg = (row.subscriber.status == "active").then(|| build(&row));
                            (row, msg)
                        })
                        .collect()
                }));
        }
        Ok(())
    }

    /// A rendered message is waiting to be claimed.
    fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.ready.is_empty()
            && self.rendering.is_empty()
            && self.queue.is_empty()
            && self.owed.done
    }

    async fn next(&mut self, store: &Store) -> Option<Result<Built<E>, Stall>> {
        if self.ready.is_empty() {
            let handle = self.rendering.pop_front()?;
            match handle.await {
                Ok(chunk) => self.ready.extend(chunk),
                Err(e) => return Some(Err(Stall::Worker(e))),
            }
            if let Err(e) = self.refill(store) {
                return Some(Err(Stall::Ledger(e)));
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

/// Delivers the owed rows: claims, sends with `concurrency` in flight and at most
/// `rate`, and settles each outcome. `build` makes a row's message on a worker thread,
/// a few chunks ahead of its claim, so a large edition is never all in memory.
/// `alone` tells a build error that concerns only its recipient (an address that cannot
/// be written into a header): that message fails by itself and the edition goes on.
#[allow(clippy::too_many_arguments)]
pub async fn deliver<E: std::error::Error + Send + 'static>(
    store: &mut Store,
    transport: &Transport,
    owed: Owed,
    build: Build<E>,
    alone: &(dyn Fn(&E) -> Option<String> + Sync),
    pacing: &Pacing,
    stop: &StopSignal,
    progress: &dyn Fn(usize),
) -> Result<Tally, DeliverError<E>> {
    let limiter = pacing.rate.and_then(|r| {
        let period = r.per / r.count.max(1);
        // A small burst (2 % of the per-period count) lets a run catch up after a slow
        // commit instead of losing that slot; over a run it adds at most that many.
        let burst = NonZeroU32::new((r.count / 50).clamp(1, 50)).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(period).map(|q| RateLimiter::direct(q.allow_burst(burst)))
    });
    let concurrency = pacing.concurrency.max(1);
    let mut tally = Tally::default();
    let mut settle: Vec<Outcome> = Vec::new();
    let mut suspects: Suspects = Vec::new();
    let mut stop_rx = stop.receiver();
    let mut in_flight: JoinSet<(PendingDelivery, Result<String, SendError>)> = JoinSet::new();
    let mut queue = RenderAhead::new(store, owed, build, concurrency)?;
    let mut done = 0usize;
    loop {
        // Fill free slots: take rendered messages, pace, then claim the whole batch in
        // one commit that also settles whatever finished since the last one.
        let mut batch: Vec<(PendingDelivery, Outgoing)> = Vec::new();
        if let Some(why) = tally.paused.clone() {
            // The breaker is open: claim nothing more; what is in flight settles (a
            // message the relay did accept is sent), the rest goes back to deferred.
            tracing::warn!(reason = %why, in_flight = in_flight.len(), "The transport fails for every message; pausing this edition.");
            drain(
                &mut in_flight,
                &mut settle,
                &mut tally,
                &mut suspects,
                pacing,
            )
            .await;
            requeue_suspects(&mut suspects, &mut settle, &mut tally, pacing);
            store.step_and_sync(&settle, claimant())?;
            done += settle.len();
            progress(done);
            return Ok(tally);
        }
        if stop.is_set() {
            tracing::info!(
                in_flight = in_flight.len(),
                "Stopping: no new messages; waiting for those in flight."
            );
            if tokio::time::timeout(
                stop.grace,
                drain(
                    &mut in_flight,
                    &mut settle,
                    &mut tally,
                    &mut suspects,
                    pacing,
                ),
            )
            .await
            .is_err()
            {
                // Their rows stay `sending` under this process's claim; once it has
                // exited they are retried like any message in flight at a crash.
                tracing::warn!(
                    abandoned = in_flight.len(),
                    "Grace period over; messages still in flight will be retried by the next run."
                );
            }
            fail_suspects(&mut suspects, &mut settle, &mut tally);
            store.step_and_sync(&settle, claimant())?;
            done += settle.len();
            progress(done);
            tally.stopped = true;
            return Ok(tally);
        }
        while in_flight.len() + batch.len() < concurrency {
            let Some(next) = queue.next(store).await else {
                break;
            };
            let failure = match next {
                Ok((row, None)) => {
                    settle.push(Outcome::Suppressed {
                        id: row.id,
                        reason: format!("subscriber is {}", row.subscriber.status),
                    });
                    tally.suppressed += 1;
                    continue;
                }
                Ok((row, Some(Ok(msg)))) => {
                    if let Some(l) = &limiter {
                        // A stop is answered at once, not after the next slot.
                        tokio::select! {
                            _ = l.until_ready() => {}
                            _ = stop_rx.changed() => {}
                        }
                    }
                    batch.push((row, msg));
                    if limiter.is_some() {
                        // Paced sending claims one at a time so claims follow the rate.
                        break;
                    }
                    continue;
                }
                Ok((row, Some(Err(e)))) => match alone(&e) {
                    Some(reason) => {
                        // One unsendable address never blocks an edition.
                        log_failure(&tally, &row.subscriber.email, &reason);
                        tally
                            .failed
                            .push((row.subscriber.email.clone(), reason.clone()));
                        settle.push(Outcome::Failed {
                            id: row.id,
                            reply: reason,
                        });
                        continue;
                    }
                    None => DeliverError::Build(e),
                },
                Err(Stall::Worker(e)) => DeliverError::Worker(e.to_string()),
                Err(Stall::Ledger(e)) => DeliverError::Ledger(e),
            };
            // Nothing of this batch was claimed: finish what is in flight, record it,
            // and stop before anything else is sent.
            drain(
                &mut in_flight,
                &mut settle,
                &mut tally,
                &mut suspects,
                pacing,
            )
            .await;
            fail_suspects(&mut suspects, &mut settle, &mut tally);
            store.step_and_sync(&settle, claimant())?;
            return Err(failure);
        }
        if !batch.is_empty() || !settle.is_empty() {
            let claims: Vec<Claim> = batch
                .iter()
                .map(|(row, msg)| Claim {
                    id: row.id,
                    message_id: msg.message_id.clone(),
                    stale_claim: row.stale_claim.clone(),
                })
                .collect();
            let claimed = store.step(&settle, &claims, claimant())?;
            done += settle.len();
            settle.clear();
            progress(done);
            for ((row, msg), ok) in batch.into_iter().zip(claimed) {
                if !ok {
                    // Another process settled this row meanwhile: never send it twice.
                    continue;
                }
                let t = transport.clone();
                in_flight.spawn(async move {
                    let r = t.send(&msg).await;
                    (row, r)
                });
            }
        }
        if in_flight.is_empty() {
            if queue.is_empty() {
                break;
            }
            continue;
        }
        // Block for a completion only when no slot is free or nothing is left to claim;
        // otherwise collect what has finished and go on claiming (a paced run waits in
        // the rate limiter instead).
        if in_flight.len() >= concurrency || queue.is_empty() {
            // A stop is answered at once: the grace period starts at the signal, not
            // at the next completion.
            tokio::select! {
                joined = in_flight.join_next() => {
                    if let Some(joined) = joined {
                        record(joined, &mut settle, &mut tally, &mut suspects, pacing);
                    }
                }
                _ = stop_rx.changed() => {}
            }
        }
        while let Some(joined) = in_flight.try_join_next() {
            record(joined, &mut settle, &mut tally, &mut suspects, pacing);
        }
        // Outcomes are committed as soon as they are known when the next claim is not
        // ready at once (a render or a rate slot away): a kill then finds only messages
        // truly in flight, not accepted ones still waiting for their commit.
        if !settle.is_empty() && (limiter.is_some() || !queue.has_ready()) {
            store.step(&settle, &[], claimant())?;
            done += settle.len();
            settle.clear();
            progress(done);
        }
    }
    fail_suspects(&mut suspects, &mut settle, &mut tally);
    store.step_and_sync(&settle, claimant())?;
    done += settle.len();
    progress(done);
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        let base = Duration::from_secs(10);
        for attempt in 1..=4 {
            let d = backoff(base, attempt);
            let nominal = base * 2u32.pow(attempt - 1);
            assert!(
                d >= nominal.mul_f64(0.75) && d <= nominal.mul_f64(1.25),
                "{attempt}: {d:?}"
            );
        }
    }

    #[test]
    fn owed_rows_are_read_in_pages_skipping_rows_a_live_process_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let now = crate::time::now();
        let n = PAGE * 2 + 300;
        let subs: Vec<crate::config::Subscriber> = (0..n)
            .map(|i| crate::config::Subscriber {
                email: crate::config::parse_address(&format!("r{i:05}@example.org")).unwrap(),
                name: None,
                digests: vec!["d".into()],
                timezone: None,
            })
            .collect();
        store.sync_subscribers(&subs, now).unwrap();
        let ids: Vec<i64> = store
            .active_subscribers("d")
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        let ed = store
            .create_edition(
                &crate::store::NewEdition {
                    digest: "d".into(),
                    audience: String::new(),
                    number: 1,
                    scheduled_for: now,
                    window_from: now,
                    window_to: now,
                    essays: vec![],
                    replies: vec![],
                    subscribers: ids,
                    more_essays: 0,
                    threads: Default::default(),
                },
                now,
            )
            .unwrap()
            .unwrap();
        // A whole first page is held by a live process: paging must go on past it.
        let first = store.pending_deliveries(ed.id, now, &|_| false).unwrap();
        let held: Vec<Claim> = first[..PAGE]
            .iter()
            .map(|r| Claim {
                id: r.id,
                message_id: "<m@x>".into(),
                stale_claim: None,
            })
            .collect();
        store.step(&[], &held, claimant()).unwrap();
        let mut owed = Owed::new(&store, ed.id, now).unwrap();
        assert_eq!(owed.total(), n - PAGE);
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let page = owed.next_page(&store).unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= PAGE);
            for row in page {
                assert!(seen.insert(row.id), "row {} read twice", row.id);
            }
        }
        assert_eq!(seen.len(), n - PAGE);
        assert!(owed.next_page(&store).unwrap().is_empty());
    }

    #[test]
    fn our_own_claims_are_alive_and_garbage_is_dead() {
        assert!(!claim_is_dead(claimant()));
        assert!(claim_is_dead(&format!("{}:other", std::process::id())));
        assert!(claim_is_dead("nonsense"));
        assert!(claim_is_dead("4194304999:x"), "no such pid");
    }
}
