//! Mail that comes back (`gazette inbound`): which delivery a report names, what was
//! read, and the subscriber changes it leads to.

use super::*;

/// A delivery that a bounce or complaint names, with its reader.
#[derive(Debug, Clone, PartialEq)]
pub struct SentCopy {
    /// The delivery row.
    pub delivery: i64,
    /// The subscriber row.
    pub subscriber: i64,
    /// The address it was sent to.
    pub email: String,
    /// The digest.
    pub digest: String,
}

/// What `gazette inbound` has read, by kind, for `status` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct InboundCounts {
    /// (kind, messages), by kind.
    pub kinds: Vec<(String, i64)>,
    /// When the newest was read.
    pub last_at: Option<DateTime<Utc>>,
}

/// What a message read does to its subscriber.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundEffect {
    /// Nothing: only counted.
    Nothing,
    /// Marked bounced (a permanent failure), the row's detail saying why.
    Bounce,
    /// Counted; bounced once `limit` deliveries failed for now since `since`.
    SoftBounce {
        /// Temporary failures that bounce.
        limit: u32,
        /// Start of the window they are counted in.
        since: DateTime<Utc>,
    },
    /// Unsubscribed from everything as "complained".
    Complain,
    /// Leaves this digest (a mailto unsubscribe), as a one-click POST does.
    Leave(String),
}

/// One message read, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRow<'a> {
    /// The message's Message-ID, or a digest of its bytes.
    pub key: &'a str,
    /// bounce, soft_bounce, complaint, unsubscribe, forged, unmatched or other.
    pub kind: &'a str,
    /// The subscriber it concerned, if known.
    pub subscriber: Option<i64>,
    /// The delivery it named, if known.
    pub delivery: Option<i64>,
    /// The digest it concerned, if known.
    pub digest: Option<&'a str>,
    /// The status code and diagnostic, the feedback type, or why it was not acted on.
    pub detail: &'a str,
}

impl Store {
    /// The delivery whose Message-ID is `<{digest}.{number}.{hash}@…>`, if it exists.
    pub fn copy_by_message_id(&self, message_id: &str) -> Result<Option<SentCopy>> {
        let local = message_id
            .trim()
            .trim_start_matches('<')
            .split('@')
            .next()
            .unwrap_or_default();
        let mut parts = local.rsplitn(3, '.');
        let (Some(_hash), Some(number), Some(digest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let Ok(number) = number.parse::<i64>() else {
            return Ok(None);
        };
        let id = format!("<{}>", message_id.trim().trim_matches(['<', '>']));
        // Through the edition (digest, number is unique), so only that edition's rows
        // are looked at; delivery has no index on message_id.
        Ok(self
            .conn
            .query_row(
                "SELECT d.id, d.subscriber_id, s.email, e.digest FROM edition e
                 JOIN delivery d ON d.edition_id = e.id
                 JOIN subscriber s ON s.id = d.subscriber_id
                 WHERE e.digest = ?1 AND e.number = ?2 AND d.message_id = ?3",
                params![digest, number, id],
                |r| {
                    Ok(SentCopy {
                        delivery: r.get(0)?,
                        subscriber: r.get(1)?,
                        email: r.get(2)?,
                        digest: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records one message read and applies what it asks, in one transaction: `None`
    /// if its key was recorded before (nothing is applied twice), else whether a
    /// subscriber changed. A soft bounce bounces the reader once `limit` deliveries
    /// failed for now since `since`.
    pub fn settle_inbound(
        &mut self,
        row: &InboundRow<'_>,
        effect: &InboundEffect,
        now: DateTime<Utc>,
    ) -> Result<Option<bool>> {
        let now_s = ts(now);
        let tx = self.conn.transaction()?;
        let new = tx.execute(
            "INSERT INTO inbound (key, received_at, kind, subscriber_id, delivery_id, digest, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (key) DO NOTHING",
            params![
                row.key,
                now_s,
                row.kind,
                row.subscriber,
                row.delivery,
                row.digest,
                row.detail
            ],
        )?;
        if new == 0 {
            return Ok(None);
        }
        let bounce = |tx: &db::Tx<'_>, id: i64, reason: &str| -> Result<bool> {
            Ok(tx.execute(
                "UPDATE subscriber SET status = 'bounced', status_reason = ?2, changed_at = ?3
                 WHERE id = ?1 AND status = 'active'",
                params![id, reason, now_s],
            )? > 0)
        };
        let changed = match (effect, row.subscriber) {
            (InboundEffect::Nothing, _) | (_, None) => false,
            (InboundEffect::Bounce, Some(id)) => bounce(&tx, id, row.detail)?,
            (InboundEffect::SoftBounce { limit, since }, Some(id)) => {
                let n: i64 = tx.query_row(
                    "SELECT COUNT(DISTINCT COALESCE(delivery_id, -id)) FROM inbound
                     WHERE subscriber_id = ?1 AND kind = 'soft_bounce' AND received_at >= ?2",
                    params![id, ts(*since)],
                    |r| r.get(0),
                )?;
                n >= i64::from(*limit)
                    && bounce(
                        &tx,
                        id,
                        &format!("{n} temporary failures since {}, the last {}", ts(*since), row.detail),
                    )?
            }
            (InboundEffect::Complain, Some(id)) => {
                tx.execute(
                    "UPDATE subscriber SET status = 'unsubscribed', status_reason = 'complained', changed_at = ?2
                     WHERE id = ?1 AND status = 'active'",
                    params![id, now_s],
                )? > 0
            }
            (InboundEffect::Leave(digest), Some(id)) => {
                tx.execute(
                    "INSERT INTO digest_choice (subscriber_id, digest, wanted, changed_at)
                     SELECT ?1, ?2, 0, ?3 WHERE EXISTS (SELECT 1 FROM subscriber WHERE id = ?1)
                     ON CONFLICT (subscriber_id, digest) DO UPDATE SET wanted = 0, changed_at = ?3
                       WHERE digest_choice.wanted = 1",
                    params![id, digest, now_s],
                )? > 0
            }
        };
        tx.commit()?;
        Ok(Some(changed))
    }

    /// Messages read by kind (all time) and when the newest was read.
    pub fn inbound_counts(&self) -> Result<InboundCounts> {
        let kinds = self
            .conn
            .query_map(
                "SELECT kind, COUNT(*) FROM inbound GROUP BY kind ORDER BY kind",
                params![],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let last: Option<String> =
            self.conn
                .query_row("SELECT MAX(received_at) FROM inbound", params![], |r| {
                    r.get(0)
                })?;
        Ok(InboundCounts {
            kinds,
            last_at: last.as_deref().map(parse_ts).transpose()?,
        })
    }
}
