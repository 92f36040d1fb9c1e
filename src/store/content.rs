//! Essays, replies and sources: what gathers store, what editions select from, and
//! what a source remembers for its next gather.

use super::*;

impl Store {
    /// Stores what a source gathered: new items get `first_seen_at = now`; known items
    /// are updated in place and keep their first-seen time, so they never become new again.
    pub fn upsert_gathered(
        &mut self,
        source: &str,
        g: &Gathered,
        now: DateTime<Utc>,
    ) -> Result<Added> {
        self.upsert_gathered_capped(source, g, now, usize::MAX)
    }

    /// [`Store::upsert_gathered`], taking at most `max_new` new essays (and ten times
    /// that many new replies) that would be news; the rest are held for a later gather,
    /// and the source's feeds are then fetched without validators until they are in.
    pub fn upsert_gathered_capped(
        &mut self,
        source: &str,
        g: &Gathered,
        now: DateTime<Utc>,
        max_new: usize,
    ) -> Result<Added> {
        let max_new_replies = max_new.saturating_mul(10);
        let now_s = ts(now);
        let tx = self.conn.transaction()?;
        let first_gather = tx
            .query_row(
                "SELECT 1 FROM source_state WHERE source = ?1 AND first_gathered_at IS NOT NULL",
                [source],
                |_| Ok(()),
            )
            .optional()?
            .is_none();
        let mut added = Added::default();
        {
            let mut exists_e =
                tx.prepare_cached("SELECT 1 FROM essay WHERE source = ?1 AND key = ?2")?;
            let mut upsert_e = tx.prepare_cached(
                "INSERT INTO essay (source, key, title, author, url, published_at, updated_at, summary, content_html, first_seen_at, backfill, origin_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (source, key) DO UPDATE SET
                   title = excluded.title, author = COALESCE(excluded.author, essay.author), url = excluded.url,
                   published_at = excluded.published_at, updated_at = excluded.updated_at,
                   summary = excluded.summary, content_html = excluded.content_html,
                   origin_id = COALESCE(excluded.origin_id, essay.origin_id), retracted_at = NULL",
            )?;
            // Context essays are archive by definition: stored as backfill, never counted.
            let all = g
                .essays
                .iter()
                .map(|e| (e, first_gather, false))
                .chain(g.context_essays.iter().map(|e| (e, true, true)));
            for (e, backfill, context) in all {
                let new = exists_e
                    .query_row(params![source, e.key], |_| Ok(()))
                    .optional()?
                    .is_none();
                // Archive (first gather, context) is never news, so never capped.
                if new && !backfill && added.essays >= max_new {
                    added.held += 1;
                    continue;
                }
                upsert_e.execute(params![
                    source,
                    e.key,
                    e.title,
                    e.author,
                    e.url,
                    e.published_at.map(ts),
                    e.updated_at.map(ts),
                    e.summary,
                    e.content_html,
                    now_s,
                    backfill,
                    e.origin_id
                ])?;
                added.essays += usize::from(new && !context);
            }
            let mut exists_r =
                tx.prepare_cached("SELECT 1 FROM reply WHERE source = ?1 AND key = ?2")?;
            let mut upsert_r = tx.prepare_cached(
                "INSERT INTO reply (source, key, essay_key, parent_key, author, url, published_at, content_html, first_seen_at, backfill, origin_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (source, key) DO UPDATE SET
                   essay_key = excluded.essay_key,
                   -- A route that cannot see threads (an RSS comment feed without its
                   -- \"In reply to\" line) must not erase a parent another route knew.
                   parent_key = COALESCE(excluded.parent_key, reply.parent_key),
                   author = excluded.author, url = excluded.url,
                   published_at = excluded.published_at, content_html = excluded.content_html,
                   origin_id = COALESCE(excluded.origin_id, reply.origin_id), retracted_at = NULL",
            )?;
            for r in &g.replies {
                let new = exists_r
                    .query_row(params![source, r.key], |_| Ok(()))
                    .optional()?
                    .is_none();
                if new && !first_gather && added.replies >= max_new_replies {
                    added.held += 1;
                    continue;
                }
                upsert_r.execute(params![
                    source,
                    r.key,
                    r.essay_key,
                    r.parent_key,
                    r.author,
                    r.url,
                    r.published_at.map(ts),
                    r.content_html,
                    now_s,
                    first_gather,
                    r.origin_id
                ])?;
                added.replies += usize::from(new);
            }
        }
        {
            // Unplaced replies: kept (first sighting wins), forgotten once placed or
            // after 30 days.
            let mut keep = tx.prepare_cached(
                "INSERT INTO unplaced_reply (source, key, url, in_reply_to, in_reply_to_href, reply_to_comment, author, published_at, content_html, first_seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
            )?;
            for u in &g.unplaced {
                keep.execute(params![
                    source,
                    u.key,
                    u.url,
                    u.in_reply_to,
                    u.in_reply_to_href,
                    u.reply_to_comment.and_then(|n| i64::try_from(n).ok()),
                    u.author,
                    u.published_at.map(ts),
                    u.content_html,
                    now_s
                ])?;
            }
            tx.execute(
                "DELETE FROM unplaced_reply WHERE source = ?1
                   AND (key IN (SELECT key FROM reply WHERE source = ?1) OR first_seen_at < ?2)",
                params![source, ts(now - chrono::Duration::days(30))],
            )?;
        }
        {
            let mut fetched = tx.prepare_cached(
                "INSERT INTO http_cache (url, source, essay_key, etag, last_modified, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (url) DO UPDATE SET source = ?2, essay_key = COALESCE(?3, http_cache.essay_key),
                   etag = ?4, last_modified = ?5, fetched_at = ?6",
            )?;
            let mut unchanged =
                tx.prepare_cached("UPDATE http_cache SET fetched_at = ?2 WHERE url = ?1")?;
            for f in &g.fetches {
                // Held items must come back: the next fetch asks for the whole feed.
                let none = Validators::default();
                let validators = match &f.validators {
                    Some(_) if added.held > 0 => Some(&none),
                    v => v.as_ref(),
                };
                match validators {
                    Some(v) => fetched.execute(params![
                        f.url,
                        source,
                        f.essay_key,
                        v.etag,
                        v.last_modified,
                        now_s
                    ])?,
                    None => unchanged.execute(params![f.url, now_s])?,
                };
            }
        }
        tx.execute(
            "INSERT INTO source_state (source, first_gathered_at, last_gathered_at, last_ok_at, last_error, last_new_essays, last_new_replies, gathers, api_root, route)
             VALUES (?1, ?2, ?2, ?2, NULL, ?3, ?4, 1, ?5, ?6)
             ON CONFLICT (source) DO UPDATE SET last_gathered_at = ?2, last_ok_at = ?2,
               first_gathered_at = COALESCE(source_state.first_gathered_at, ?2),
               last_error = NULL, last_new_essays = ?3, last_new_replies = ?4, gathers = source_state.gathers + 1,
               api_root = COALESCE(?5, source_state.api_root), route = ?6",
            params![source, now_s, added.essays as i64, added.replies as i64, g.api_root, g.route],
        )?;
        added.unplaced = tx.query_row(
            "SELECT COUNT(*) FROM unplaced_reply WHERE source = ?1",
            [source],
            |r| r.get::<_, i64>(0),
        )? as usize;
        tx.execute(
            "UPDATE source_state SET last_unplaced = ?2 WHERE source = ?1",
            params![source, added.unplaced as i64],
        )?;
        tx.commit()?;
        Ok(added)
    }

    /// Records that gathering a source failed, for `status` and the logs.
    pub fn record_source_failure(
        &mut self,
        source: &str,
        now: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO source_state (source, last_gathered_at, last_error, gathers, failures) VALUES (?1, ?2, ?3, 1, 1)
             ON CONFLICT (source) DO UPDATE SET last_gathered_at = ?2, last_error = ?3,
               gathers = source_state.gathers + 1, failures = source_state.failures + 1",
            params![source, ts(now), error],
        )?;
        Ok(())
    }

    /// What a source's next gather should know: validators, comment feeds, essays.
    pub fn source_memory(
        &self,
        source: &str,
        now: DateTime<Utc>,
        recent_replies: chrono::Duration,
    ) -> Result<SourceMemory> {
        let mut memory = SourceMemory::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT url, essay_key, etag, last_modified FROM http_cache WHERE source = ?1 ORDER BY fetched_at DESC",
        )?;
        let rows = stmt.query_map([source], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })?;
        for row in rows {
            let (url, essay, etag, last_modified) = row?;
            if let Some(essay) = essay {
                memory.comment_feeds.push((url.clone(), essay));
            }
            memory.validators.insert(
                url,
                Validators {
                    etag,
                    last_modified,
                },
            );
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT url, key FROM essay WHERE source = ?1 ORDER BY COALESCE(published_at, first_seen_at) DESC LIMIT 5000",
        )?;
        memory.essays = stmt
            .query_map([source], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?;
        let last_ok: Option<String> = self
            .conn
            .query_row(
                "SELECT last_ok_at FROM source_state WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        memory.last_ok_at = opt_ts(last_ok)?;
        memory.api_root = self.source_api_root(source)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, url, in_reply_to, in_reply_to_href, reply_to_comment, author, published_at, content_html
             FROM unplaced_reply WHERE source = ?1 ORDER BY first_seen_at LIMIT 1000",
        )?;
        let rows = stmt.query_map([source], |r| {
            Ok((
                crate::source::Unplaced {
                    key: r.get(0)?,
                    url: r.get(1)?,
                    in_reply_to: r.get(2)?,
                    in_reply_to_href: r.get(3)?,
                    reply_to_comment: r
                        .get::<_, Option<i64>>(4)?
                        .and_then(|n| u64::try_from(n).ok()),
                    author: r.get(5)?,
                    published_at: None,
                    content_html: r.get(7)?,
                },
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        for row in rows {
            let (mut u, published) = row?;
            u.published_at = opt_ts(published)?;
            memory.unplaced.push(u);
        }
        let recent = ts(now - recent_replies);
        let mut stmt = self.conn.prepare_cached(
            "SELECT origin_id, key, updated_at FROM (SELECT origin_id, key, updated_at FROM essay
               WHERE source = ?1 AND origin_id IS NOT NULL ORDER BY id DESC LIMIT 5000) AS newest
             UNION ALL
             SELECT origin_id, key, NULL FROM reply
               WHERE source = ?1 AND origin_id IS NOT NULL AND first_seen_at >= ?2",
        )?;
        let rows = stmt.query_map(params![source, recent], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (origin, key, updated) = row?;
            memory.origins.insert(origin, (key, opt_ts(updated)?));
        }
        Ok(memory)
    }

    /// What the store knows about a source's gathers.
    pub fn source_state(&self, source: &str) -> Result<Option<SourceState>> {
        let row = self
            .conn
            .query_row(
                "SELECT last_gathered_at, last_ok_at, last_error, last_new_essays, last_new_replies, route, last_unplaced
                 FROM source_state WHERE source = ?1",
                [source],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(gathered, ok, error, essays, replies, route, unplaced)| {
            Ok(SourceState {
                route,
                unplaced,
                last_gathered_at: opt_ts(gathered)?,
                last_ok_at: opt_ts(ok)?,
                last_error: error,
                last_new_essays: essays,
                last_new_replies: replies,
            })
        })
        .transpose()
    }

    /// Essays from `sources` first seen in `[from, to)`.
    pub fn essays_seen_between(
        &self,
        sources: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredEssay>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{ESSAY_SELECT} WHERE first_seen_at >= ?1 AND first_seen_at < ?2 AND retracted_at IS NULL ORDER BY id"
        ))?;
        let rows: Vec<StoredEssay> = stmt
            .query_map(params![ts(from), ts(to)], essay_raw)?
            .collect::<std::result::Result<Vec<_>, _>>()?
            .into_iter()
            .map(essay_from_raw)
            .collect::<Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter(|e| sources.contains(&e.essay.source))
            .collect())
    }

    /// Replies from `sources` first seen in `[from, to)`.
    pub fn replies_seen_between(
        &self,
        sources: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredReply>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{REPLY_SELECT} WHERE first_seen_at >= ?1 AND first_seen_at < ?2 AND retracted_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM essay e WHERE e.source = reply.source
                               AND e.key = reply.essay_key AND e.retracted_at IS NOT NULL)
             ORDER BY id"
        ))?;
        let rows: Vec<StoredReply> = stmt
            .query_map(params![ts(from), ts(to)], reply_raw)?
            .collect::<std::result::Result<Vec<_>, _>>()?
            .into_iter()
            .map(reply_from_raw)
            .collect::<Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter(|r| sources.contains(&r.reply.source))
            .collect())
    }

    /// Marks essays and replies (by row id) as retracted by their origin: no edition made
    /// after this carries them, nor the replies under such an essay.
    pub fn retract(&mut self, essays: &[i64], replies: &[i64], now: DateTime<Utc>) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut e = tx.prepare_cached("UPDATE essay SET retracted_at = ?2 WHERE id = ?1")?;
            for id in essays {
                e.execute(params![id, ts(now)])?;
            }
            let mut r = tx.prepare_cached("UPDATE reply SET retracted_at = ?2 WHERE id = ?1")?;
            for id in replies {
                r.execute(params![id, ts(now)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The fallback route a source last ran on, if any (`None`: its normal route).
    pub fn source_route(&self, source: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT route FROM source_state WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// The API root a source discovered, if any.
    pub fn source_api_root(&self, source: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT api_root FROM source_state WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Essays by (source, key), for showing replies under essays outside the edition.
    pub fn essays_by_key(&self, keys: &[(String, String)]) -> Result<Vec<StoredEssay>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{ESSAY_SELECT} WHERE source = ?1 AND key = ?2"))?;
        let mut out = Vec::new();
        for (source, key) in keys {
            if let Some(raw) = stmt.query_row(params![source, key], essay_raw).optional()? {
                out.push(essay_from_raw(raw)?);
            }
        }
        Ok(out)
    }
}
