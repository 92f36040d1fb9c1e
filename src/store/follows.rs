//! Follows: which essays each reader follows, for `replies = "followed"` digests, the
//! follow links and pages, and `gazette follows`.

use std::collections::HashMap;

use super::db::{self, params, OptionalExtension, Row};
use chrono::{DateTime, Utc};

use super::{ts, Result, Store};

/// One essay a reader follows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Followed {
    /// Essay row id.
    pub essay_id: i64,
    /// Its source.
    pub source: String,
    /// Its key within the source.
    pub key: String,
    /// Its title.
    pub title: String,
    /// Its address.
    pub url: Option<String>,
    /// Since when (RFC 3339, UTC).
    pub since: String,
}

/// An essay as a follow command or page names it.
#[derive(Debug, Clone, PartialEq)]
pub struct EssayRef {
    /// Row id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Address.
    pub url: Option<String>,
}

fn essay_ref_row(row: &Row<'_>) -> db::DbResult<EssayRef> {
    Ok(EssayRef {
        id: row.get(0)?,
        title: row.get(1)?,
        url: row.get(2)?,
    })
}

impl Store {
    /// Makes `subscriber` follow `essay`; false when they already did.
    pub fn follow(&mut self, subscriber: i64, essay: i64, now: DateTime<Utc>) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO follow (subscriber_id, essay_id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![subscriber, essay, ts(now)],
        )?;
        Ok(n > 0)
    }

    /// Stops `subscriber` following `essay`; false when they did not.
    pub fn unfollow(&mut self, subscriber: i64, essay: i64) -> Result<bool> {
        let n = self.conn.execute(
            "DELETE FROM follow WHERE subscriber_id = ?1 AND essay_id = ?2",
            params![subscriber, essay],
        )?;
        Ok(n > 0)
    }

    /// Whether `subscriber` follows `essay`.
    pub fn follows_essay(&self, subscriber: i64, essay: i64) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM follow WHERE subscriber_id = ?1 AND essay_id = ?2",
                params![subscriber, essay],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The essays `subscriber` follows, newest follow first.
    pub fn follows_of(&self, subscriber: i64) -> Result<Vec<Followed>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.id, e.source, e.key, e.title, e.url, f.created_at
             FROM follow f JOIN essay e ON e.id = f.essay_id
             WHERE f.subscriber_id = ?1 ORDER BY f.created_at DESC, e.id DESC",
        )?;
        let rows = stmt.query_map([subscriber], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (essay_id, source, key, title, url, since) = row?;
            out.push(Followed {
                essay_id,
                source,
                key,
                title,
                url,
                since,
            });
        }
        Ok(out)
    }

    /// Who follows which of `essays`: subscriber id → the followed ones among them.
    pub fn followers_of(&self, essays: &[i64]) -> Result<HashMap<i64, Vec<i64>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT subscriber_id FROM follow WHERE essay_id = ?1")?;
        let mut out: HashMap<i64, Vec<i64>> = HashMap::new();
        for &essay in essays {
            for sub in stmt.query_map([essay], |r| r.get::<_, i64>(0))? {
                out.entry(sub?).or_default().push(essay);
            }
        }
        Ok(out)
    }

    /// An essay named by its URL or its key (as `status` and the CLI show them).
    pub fn essay_by_ref(&self, reference: &str) -> Result<Option<EssayRef>> {
        let r = reference.trim();
        let trimmed = r.trim_end_matches('/');
        Ok(self
            .conn
            .query_row(
                "SELECT id, title, url FROM essay
                 WHERE key = ?1 OR url = ?1 OR rtrim(url, '/') = ?2 OR rtrim(key, '/') = ?2
                 ORDER BY id LIMIT 1",
                params![r, trimmed],
                essay_ref_row,
            )
            .optional()?)
    }

    /// An essay by row id.
    pub fn essay_ref(&self, id: i64) -> Result<Option<EssayRef>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, title, url FROM essay WHERE id = ?1",
                [id],
                essay_ref_row,
            )
            .optional()?)
    }

    /// A reader's own "follow every new essay I am sent", if they chose.
    pub fn auto_follow_choice(&self, subscriber: i64) -> Result<Option<bool>> {
        Ok(self
            .conn
            .query_row(
                "SELECT auto_follow FROM subscriber WHERE id = ?1",
                [subscriber],
                |r| r.get::<_, Option<bool>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Records a reader's "follow every new essay I am sent".
    pub fn set_auto_follow(&mut self, subscriber: i64, on: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE subscriber SET auto_follow = ?2 WHERE id = ?1",
            params![subscriber, on],
        )?;
        Ok(())
    }

    /// Readers among `subscribers` who follow new essays automatically (their own choice,
    /// or `default` where they made none).
    pub fn auto_followers(&self, subscribers: &[i64], default: bool) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT auto_follow FROM subscriber WHERE id = ?1")?;
        let mut out = Vec::new();
        for &s in subscribers {
            let choice: Option<bool> = stmt
                .query_row([s], |r| r.get::<_, Option<bool>>(0))
                .optional()?
                .flatten();
            if choice.unwrap_or(default) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Follows `essays` for each of `subscribers`, in one transaction.
    pub fn follow_all(
        &mut self,
        subscribers: &[i64],
        essays: &[i64],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO follow (subscriber_id, essay_id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?;
            let at = ts(now);
            for s in subscribers {
                for e in essays {
                    ins.execute(params![s, e, at])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Follows in all, and readers following at least one essay (for `/metrics`).
    pub fn follow_figures(&self) -> Result<(i64, i64)> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COUNT(DISTINCT subscriber_id) FROM follow",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// The replies first seen before `upto` under each of `essays` (row ids), for
    /// `essays[].reply_count`: the same figure whenever an edition ending then is
    /// rendered, so a resumed copy is byte-identical.
    pub fn reply_counts(&self, essays: &[i64], upto: DateTime<Utc>) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT COUNT(*) FROM reply r JOIN essay e ON e.source = r.source AND e.key = r.essay_key
             WHERE e.id = ?1 AND r.first_seen_at < ?2",
        )?;
        let upto = ts(upto);
        essays
            .iter()
            .map(|id| Ok(stmt.query_row(params![id, upto], |r| r.get(0))?))
            .collect()
    }

    /// The row id of the subscriber with this (normalised) address.
    pub fn subscriber_id(&self, email: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT id FROM subscriber WHERE email = ?1", [email], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Every follow, by subscriber address, for `gazette follows list`.
    pub fn all_follows(&self) -> Result<Vec<(String, Followed)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.email, e.id, e.source, e.key, e.title, e.url, f.created_at
             FROM follow f JOIN essay e ON e.id = f.essay_id JOIN subscriber s ON s.id = f.subscriber_id
             ORDER BY s.email, f.created_at DESC, e.id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Followed {
                    essay_id: r.get(1)?,
                    source: r.get(2)?,
                    key: r.get(3)?,
                    title: r.get(4)?,
                    url: r.get(5)?,
                    since: r.get(6)?,
                },
            ))
        })?;
        Ok(rows.collect::<db::DbResult<Vec<_>>>()?)
    }
}
