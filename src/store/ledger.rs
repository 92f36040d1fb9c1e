//! Editions and the delivery ledger: creating an edition with its frozen items and
//! rows, claiming and settling deliveries (group commit), and the summaries `status` and
//! `editions` show.

use super::*;

impl Store {
    /// Deliveries still owed across all editions: (pending or in flight, deferred, the
    /// earliest retry time).
    pub fn owed(&self) -> Result<(i64, i64, Option<DateTime<Utc>>)> {
        let (pending, deferred, next): (i64, i64, Option<String>) = self.conn.query_row(
            "SELECT COUNT(*) FILTER (WHERE status IN ('pending', 'sending')),
                    COUNT(*) FILTER (WHERE status = 'deferred'),
                    MIN(CASE WHEN status = 'deferred' THEN next_attempt_at END)
             FROM delivery",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok((pending, deferred, opt_ts(next)?))
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
             ON CONFLICT (digest, audience) DO UPDATE SET last_tick = CASE WHEN excluded.last_tick > schedule_tick.last_tick
                 THEN excluded.last_tick ELSE schedule_tick.last_tick END",
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

    /// Creates an edition with its frozen items and one pending delivery per subscriber,
    /// atomically. Returns `None` if one already exists for that digest and time.
    pub fn create_edition(
        &mut self,
        e: &NewEdition,
        now: DateTime<Utc>,
    ) -> Result<Option<EditionRow>> {
        let tx = self.conn.transaction()?;
        let number = e.number;
        // Unique per digest, audience and tick (and per number): a second process making
        // the same edition inserts nothing and is told so.
        let inserted: Option<i64> = tx
            .query_row(
                "INSERT INTO edition (digest, number, scheduled_for, window_from, window_to, created_at, audience, more_essays)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING RETURNING id",
                params![e.digest, number, ts(e.scheduled_for), ts(e.window_from), ts(e.window_to), ts(now), e.audience, e.more_essays as i64],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = inserted else {
            return Ok(None);
        };
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
                "INSERT INTO delivery (edition_id, subscriber_id, threads) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
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
            .pending_page(edition_id, now, is_dead, 0, usize::MAX, false)?
            .0)
    }

    /// The owed deliveries among the next `limit` candidate rows with id above `after`,
    /// and the last id looked at (`None` once there are no more): a large edition is
    /// read a page at a time instead of held in memory whole. (The unary `+` keeps
    /// SQLite on the rowid range instead of sorting the whole edition for every page.)
    /// `reserve`: on a shared store, take the rows for this instance to send (see
    /// below); without it the page is only looked at, whoever holds its rows.
    pub fn pending_page(
        &self,
        edition_id: i64,
        now: DateTime<Utc>,
        is_dead: &dyn Fn(&str) -> bool,
        after: i64,
        limit: usize,
        reserve: bool,
    ) -> Result<(Vec<PendingDelivery>, Option<i64>)> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let is_dead = |t: &str| self.claim_dead(t, is_dead);
        // Several instances on one PostgreSQL: first reserve the next rows nobody live
        // holds (SKIP LOCKED: two instances reserving at once take disjoint rows), then
        // list only those, so each instance renders and sends its own share. The
        // reservation is the session's claim token on a still-pending row; it dies with
        // the session, and a dead instance's reserved rows are reserved again here.
        let session = self.session.as_ref().filter(|_| reserve);
        let (mine, upper) = match session.map(|s| s.token()) {
            None => (None, i64::MAX),
            Some(me) => {
                let reserved: Vec<i64> = self
                    .conn
                    .query_map(
                        "UPDATE delivery SET claimed_by = ?1 WHERE id IN (
                           SELECT d.id FROM delivery d WHERE d.edition_id = ?2 AND d.id > ?3
                              AND (d.status = 'pending' OR (d.status = 'deferred'
                                   AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?4)))
                              AND (d.claimed_by IS NULL OR d.claimed_by = ?1 OR NOT EXISTS (
                                   SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
                                      AND l.classid::bigint = ?5 AND l.objsubid = 2
                                      AND 'pg:' || l.objid::text = d.claimed_by))
                            ORDER BY d.id LIMIT ?6 FOR UPDATE SKIP LOCKED)
                         RETURNING id",
                        params![me, edition_id, after, ts(now), super::instances::CLAIM_CLASS, limit],
                        |r| r.get(0),
                    )?
                    .collect::<std::result::Result<_, _>>()?;
                (Some(me), reserved.iter().copied().max().unwrap_or(i64::MAX))
            }
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.attempts, s.id, s.email, s.name, COALESCE(s.chosen_timezone, s.timezone),
                    CASE WHEN s.status = 'active' AND NOT EXISTS (SELECT 1 FROM subscription w
                              JOIN edition e ON e.id = d.edition_id
                              WHERE w.subscriber_id = s.id AND w.digest = e.digest)
                         THEN 'unsubscribed' ELSE s.status END,
                    d.status, d.claimed_by, d.threads
             FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id
             WHERE +d.edition_id = ?1 AND d.id > ?3 AND d.id <= ?6 AND (d.status = 'pending'
                OR (d.status = 'deferred' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?2))
                OR d.status = 'sending')
               AND (CAST(?5 AS TEXT) IS NULL OR d.status = 'sending' OR d.claimed_by = ?5)
             ORDER BY d.id LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![edition_id, ts(now), after, limit, mine, upper],
            |r| {
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
            },
        )?;
        let mut out = Vec::new();
        let mut last = None;
        for row in rows {
            let (mut pending, status, claimed_by) = row?;
            last = Some(pending.id);
            if status == "sending" {
                if !claimed_by.as_deref().is_none_or(&is_dead) {
                    continue;
                }
                // Claims are never NULL once set; an empty token stands for "none".
                pending.stale_claim = Some(claimed_by.unwrap_or_default());
            }
            out.push(pending);
        }
        Ok((out, last))
    }

    /// Whether a claim's holder is gone: PostgreSQL sessions by their lock, others
    /// (this host's processes) by `is_dead`.
    fn claim_dead(&self, token: &str, is_dead: &dyn Fn(&str) -> bool) -> bool {
        if token.starts_with("pg:") {
            self.pg_claim_dead(token)
        } else {
            is_dead(token)
        }
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
        let is_dead = |t: &str| self.claim_dead(t, is_dead);
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
            if claim?.as_deref().is_none_or(&is_dead) {
                stale += 1;
            }
        }
        Ok(usize::try_from(due).unwrap_or(0) + stale)
    }

    /// How many of an edition's owed rows this session does not hold, on a shared
    /// store: a `send` that leaves while another instance holds some could leave them to
    /// an instance that then dies. With `live_only`, only rows other live instances hold
    /// (reserved or in flight) count; without, also rows nobody holds: ones a dead
    /// instance left (its locks went between this run's last pass and now) and ones
    /// being reserved at this moment (skipped as locked, not yet marked claimed), which
    /// the next pass takes or finds held. Always 0 on SQLite.
    pub fn held_elsewhere(&self, edition_id: i64, live_only: bool) -> Result<usize> {
        let Some(me) = self.session.as_ref().map(|s| s.token()) else {
            return Ok(0);
        };
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM delivery d WHERE d.edition_id = ?1
               AND d.status IN ('pending', 'sending')
               AND d.claimed_by IS DISTINCT FROM ?2
               AND (NOT ?4 OR EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
                              AND l.classid::bigint = ?3 AND l.objsubid = 2
                              AND 'pg:' || l.objid::text = d.claimed_by))",
            params![edition_id, me, super::instances::CLAIM_CLASS, live_only],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
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
        // PostgreSQL the same way: between syncs a step commits with
        // `synchronous_commit = off` (it reaches the server, which flushes its WAL
        // within `wal_writer_delay`); every GROUP_COMMIT a step waits for the flush.
        let sqlite = self.conn.sqlite();
        if let (false, Some(c)) = (durable, sqlite) {
            c.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let token = self.claim_token(claimant).to_owned();
        let claimed = self.step_tx(settle, claims, &token, !durable);
        if durable {
            if claimed.is_ok() {
                self.last_durable = Some(std::time::Instant::now());
                self.unsynced = false;
            }
        } else if let Some(c) = self.conn.sqlite() {
            self.unsynced |= claimed.is_ok();
            c.pragma_update(None, "synchronous", "FULL")?;
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
            if let Some(c) = self.conn.sqlite() {
                c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            }
            self.unsynced = false;
        }
        Ok(())
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
             AND (CAST(?2 AS TEXT) IS NULL OR instr(COALESCE(d.last_reply, ''), ?2) > 0)
             AND (CAST(?3 AS TEXT) IS NULL OR s.email = ?3)";
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
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], edition_raw)?
            .collect::<std::result::Result<_, _>>()?;
        rows.into_iter()
            .map(|raw| self.summarize(edition_from_raw(raw)?))
            .collect()
    }
}
