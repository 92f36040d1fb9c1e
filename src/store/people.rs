//! Subscribers: the list from config.toml and the managed one, their status and
//! suppression, and who receives a digest.

use super::*;

impl Store {
    /// Makes the subscriber table agree with `config.toml` for config-origin rows.
    /// Status is never touched: an unsubscribed or bounced address stays so.
    pub fn sync_subscribers(
        &mut self,
        subs: &[config::Subscriber],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now_s = ts(now);
        let tx = self.conn.transaction()?;
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS listed (id BIGINT PRIMARY KEY)",
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
                    "INSERT INTO subscriber_digest (subscriber_id, digest) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![id, d],
                )?;
            }
            tx.execute(
                "INSERT INTO listed (id) VALUES (?1) ON CONFLICT DO NOTHING",
                [id],
            )?;
        }
        // An address taken out of config.toml gets no digest any more (its row and
        // history stay; `subscribers list` shows it with no digests).
        tx.execute(
            "DELETE FROM subscriber_digest WHERE subscriber_id IN
               (SELECT id FROM subscriber WHERE origin = 'config' AND id NOT IN (SELECT id FROM listed))",
            [],
        )?;
        tx.execute("DROP TABLE listed", [])?;
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
        let tx = self.conn.transaction()?;
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
                let id: i64 = tx.query_row(
                    "INSERT INTO subscriber (email, name, timezone, origin, status, changed_at)
                     VALUES (?1, ?2, ?3, ?4, 'active', ?5) RETURNING id",
                    params![e.email, e.name, e.timezone, origin, ts(now)],
                    |r| r.get(0),
                )?;
                (id, Upserted::Added)
            }
        };
        for d in &e.digests {
            tx.execute(
                "INSERT INTO subscriber_digest (subscriber_id, digest) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
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
                        (SELECT digest FROM subscription d WHERE d.subscriber_id = s.id ORDER BY digest) AS ds), ''),
                    s.status_reason
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
                reason: r.get(6)?,
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
}
