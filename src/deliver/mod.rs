//! Builds each RFC 5322 message and hands it to a transport, recording every outcome in
//! the ledger. It never decides who gets what: it is given rendered copies and rows.

mod message;
mod transport;

pub use message::{
    build_message, message_id, unsubscribe_mailto, Addressing, BuildError, Outgoing,
};
pub use transport::{SendError, Transport};

use chrono::{DateTime, Utc};

use crate::store::{PendingDelivery, Store, StoreError};

/// Counts of what one delivery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages the transport accepted.
    pub sent: usize,
    /// Messages to retry later.
    pub deferred: usize,
    /// Messages that failed for good, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Delivery stopped because the ledger could not be written; nothing further was sent.
#[derive(Debug, thiserror::Error)]
#[error("delivery stopped, the ledger could not be updated: {0}")]
pub struct LedgerError(#[from] pub StoreError);

/// Sends each copy whose delivery row is still owed, marking it in flight before the
/// transport sees it and sent after the transport accepted it.
pub async fn deliver(
    store: &mut Store,
    transport: &Transport,
    copies: Vec<(PendingDelivery, Outgoing)>,
    mut now: impl FnMut() -> DateTime<Utc>,
) -> Result<Tally, LedgerError> {
    let mut tally = Tally::default();
    for (row, msg) in copies {
        store.mark_sending(row.id, &msg.message_id)?;
        match transport.send(&msg).await {
            Ok(reply) => {
                store.mark_sent(row.id, now(), &reply)?;
                tracing::debug!(to = %row.subscriber.email, message_id = %msg.message_id, "Delivered.");
                tally.sent += 1;
            }
            Err(e) if e.is_transient() => {
                store.mark_unsent(row.id, "deferred", &e.to_string())?;
                tracing::warn!(to = %row.subscriber.email, error = %e, "Deferred; will retry on the next send.");
                tally.deferred += 1;
            }
            Err(e) => {
                store.mark_unsent(row.id, "failed", &e.to_string())?;
                tracing::error!(to = %row.subscriber.email, error = %e, "Delivery failed.");
                tally
                    .failed
                    .push((row.subscriber.email.clone(), e.to_string()));
            }
        }
    }
    Ok(tally)
}
