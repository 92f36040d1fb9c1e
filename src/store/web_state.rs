//! What the web endpoint reads and writes: subscribers' own choices (per-digest
//! unsubscribes, preferences), sign-ups awaiting confirmation, and the figures behind
//! `/metrics`.

use super::db::{params, OptionalExtension};
use chrono::{DateTime, Duration, Utc};

use super::{opt_ts, parse_ts, ts, Result, Store};

/// A subscriber as their preferences page shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Row id (what tokens name).
    pub id: i64,
    /// Address.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Effective time zone (their own choice first).
    pub timezone: Option<String>,
    /// active, unsubscribed or bounced.
    pub status: String,
    /// Digests they receive, by name.
    pub digests: Vec<String>,
}

/// A sign-up from the form, waiting for its confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct Signup {
    /// Row id (what the confirmation token names).
    pub id: i64,
    /// Normalised address.
    pub email: String,
    /// Name given in the form.
    pub name: Option<String>,
    /// Time zone given in the form.
    pub timezone: Option<String>,
    /// Digests asked for.
    pub digests: Vec<String>,
    /// When the form was sent.
    pub created_at: DateTime<Utc>,
    /// When it was confirmed, if it was.
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// Counts behind `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// (digest, editions created).
    pub editions: Vec<(String, i64)>,
    /// (digest, latest finished_at) of finished editions.
    pub last_finished: Vec<(String, DateTime<Utc>)>,
    /// (digest, delivery status, rows).
    pub deliveries: Vec<(String, String, i64)>,
    /// Per source: (name, gathers, failures, last success).
    pub sources: Vec<(String, i64, i64, Option<DateTime<Utc>>)>,
    /// (subscriber status, count).
    pub subscribers: Vec<(String, i64)>,
    /// Sign-ups: (confirmed?, count).
    pub signups: Vec<(bool, i64)>,
    /// Follows in all.
    pub follows: i64,
    /// Readers following at least one essay.
    pub following_readers: i64,
    /// Mail read by `gazette inbound`: (kind, messages).
    pub inbound: Vec<(String, i64)>,
    /// Archive pages and feeds served since the endpoint started (set by the endpoint).
    pub archive_hits: u64,
}

fn split_digests(s: &str) -> Vec<String> {
    s.split(';')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Store {
    /// A subscriber by row id, with the digests they receive.
    pub fn profile(&self, id: i64) -> Result<Option<Profile>> {
        Ok(self
            .conn
            .query_row(
                "SELECT s.id, s.email, s.name, COALESCE(s.chosen_timezone, s.timezone), s.status,
                        COALESCE((SELECT group_concat(digest, ';') FROM
                            (SELECT digest FROM subscription w WHERE w.subscriber_id = s.id ORDER BY digest) AS ds), '')
                 FROM subscriber s WHERE s.id = ?1",
                [id],
                |r| {
                    Ok(Profile {
                        id: r.get(0)?,
                        email: r.get(1)?,
                        name: r.get(2)?,
                        timezone: r.get(3)?,
                        status: r.get(4)?,
                        digests: split_digests(&r.get::<_, String>(5)?),
                    })
                },
            )
            .optional()?)
    }

    /// The subscriber leaves one digest (a one-click unsubscribe); this wins over every
    /// list. Returns whether anything changed (false the second time: idempotent).
    pub fn leave_digest(&mut self, id: i64, digest: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO digest_choice (subscriber_id, digest, wanted, changed_at)
             SELECT ?1, ?2, 0, ?3 WHERE EXISTS (SELECT 1 FROM subscriber WHERE id = ?1)
             ON CONFLICT (subscriber_id, digest) DO UPDATE SET wanted = 0, changed_at = ?3
               WHERE digest_choice.wanted = 1",
            params![id, digest, ts(now)],
        )?;
        Ok(n > 0)
    }

    /// Applies a preferences form: the digests ticked and unticked, and a time zone (None
    /// keeps the current one). Only for active subscribers: coming back after leaving
    /// goes through a confirmed sign-up. Returns false if nothing was applied.
    pub fn set_preferences(
        &mut self,
        id: i64,
        choices: &[(String, bool)],
        timezone: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now_s = ts(now);
        let tx = self.conn.transaction()?;
        let status: Option<String> = tx
            .query_row("SELECT status FROM subscriber WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        if status.as_deref() != Some("active") {
            return Ok(false);
        }
        for (digest, wanted) in choices {
            tx.execute(
                "INSERT INTO digest_choice (subscriber_id, digest, wanted, changed_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (subscriber_id, digest) DO UPDATE SET wanted = ?3, changed_at = ?4
                   WHERE wanted <> ?3",
                params![id, digest, i64::from(*wanted), now_s],
            )?;
        }
        if let Some(zone) = timezone {
            tx.execute(
                "UPDATE subscriber SET chosen_timezone = ?2, changed_at = ?3 WHERE id = ?1",
                params![id, zone, now_s],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// Unsubscribes a subscriber from everything, by row id; false if unknown.
    pub fn unsubscribe_id(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let known: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM subscriber WHERE id = ?1)",
            [id],
            |r| r.get(0),
        )?;
        self.conn.execute(
            "UPDATE subscriber SET status = 'unsubscribed', changed_at = ?2
             WHERE id = ?1 AND status = 'active'",
            params![id, ts(now)],
        )?;
        Ok(known)
    }

    /// Records a sign-up from the form; sign-ups older than 30 days are forgotten.
    pub fn create_signup(
        &mut self,
        email: &str,
        name: Option<&str>,
        timezone: Option<&str>,
        digests: &[String],
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM signup WHERE created_at < ?1",
            [ts(now - Duration::days(30))],
        )?;
        let id: i64 = tx.query_row(
            "INSERT INTO signup (email, name, timezone, digests, created_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            params![email, name, timezone, digests.join(";"), ts(now)],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// A sign-up by row id.
    pub fn signup(&self, id: i64) -> Result<Option<Signup>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, email, name, timezone, digests, created_at, confirmed_at FROM signup WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(id, email, name, timezone, digests, created, confirmed)| {
            Ok(Signup {
                id,
                email,
                name,
                timezone,
                digests: split_digests(&digests),
                created_at: parse_ts(&created)?,
                confirmed_at: opt_ts(confirmed)?,
            })
        })
        .transpose()
    }

    /// The owner of a sign-up confirmed it: the address becomes (or becomes again) an
    /// active subscriber of the digests asked for, whatever it was before. Idempotent;
    /// returns the subscriber's row id, or None if there is no such sign-up.
    pub fn confirm_signup(&mut self, signup: i64, now: DateTime<Utc>) -> Result<Option<i64>> {
        let Some(s) = self.signup(signup)? else {
            return Ok(None);
        };
        let now_s = ts(now);
        let tx = self.conn.transaction()?;
        // A confirmation link works once: a used one changes nothing, so replaying it can
        // never re-subscribe a reader who left since.
        let first_use = tx.execute(
            "UPDATE signup SET confirmed_at = ?2 WHERE id = ?1 AND confirmed_at IS NULL",
            params![signup, now_s],
        )? == 1;
        if !first_use {
            let id: Option<i64> = tx
                .query_row(
                    "SELECT id FROM subscriber WHERE email = ?1",
                    [&s.email],
                    |r| r.get(0),
                )
                .optional()?;
            tx.commit()?;
            return Ok(id);
        }
        tx.execute(
            "INSERT INTO subscriber (email, name, timezone, origin, status, changed_at)
             VALUES (?1, ?2, ?3, 'web', 'active', ?4)
             ON CONFLICT (email) DO UPDATE SET
               name = COALESCE(excluded.name, subscriber.name),
               chosen_timezone = COALESCE(?3, subscriber.chosen_timezone),
               changed_at = CASE WHEN subscriber.status = 'active' THEN subscriber.changed_at ELSE ?4 END,
               status = 'active'",
            params![s.email, s.name, s.timezone, now_s],
        )?;
        let id: i64 = tx.query_row(
            "SELECT id FROM subscriber WHERE email = ?1",
            [&s.email],
            |r| r.get(0),
        )?;
        for d in &s.digests {
            tx.execute(
                "INSERT INTO digest_choice (subscriber_id, digest, wanted, changed_at) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (subscriber_id, digest) DO UPDATE SET wanted = 1, changed_at = ?3 WHERE wanted = 0",
                params![id, d, now_s],
            )?;
        }
        tx.commit()?;
        Ok(Some(id))
    }

    /// The counts `/metrics` reports.
    pub fn figures(&self) -> Result<Figures> {
        let mut f = Figures::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT digest, COUNT(*), MAX(finished_at) FROM edition GROUP BY digest ORDER BY digest")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (digest, n, finished) = row?;
            if let Some(t) = opt_ts(finished)? {
                f.last_finished.push((digest.clone(), t));
            }
            f.editions.push((digest, n));
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.digest, d.status, COUNT(*) FROM delivery d JOIN edition e ON e.id = d.edition_id
             GROUP BY e.digest, d.status ORDER BY e.digest, d.status",
        )?;
        f.deliveries = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<std::result::Result<_, _>>()?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT source, gathers, failures, last_ok_at FROM source_state ORDER BY source",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        for row in rows {
            let (source, gathers, failures, ok) = row?;
            f.sources.push((source, gathers, failures, opt_ts(ok)?));
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, COUNT(*) FROM subscriber GROUP BY status ORDER BY status",
        )?;
        f.subscribers = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT confirmed_at IS NOT NULL, COUNT(*) FROM signup GROUP BY 1 ORDER BY 1",
        )?;
        f.signups = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?;
        (f.follows, f.following_readers) = self.follow_figures()?;
        f.inbound = self.inbound_counts()?.kinds;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(emails: &[&str]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("g.db")).unwrap();
        for e in emails {
            let entry = crate::subscribers::Entry {
                email: (*e).to_owned(),
                name: None,
                timezone: None,
                digests: vec!["essays".into(), "replies".into()],
            };
            store
                .upsert_subscriber(&entry, "cli", crate::time::now())
                .unwrap();
        }
        (dir, store)
    }

    fn id_of(store: &Store, email: &str) -> i64 {
        store
            .active_subscribers("essays")
            .unwrap()
            .into_iter()
            .chain(store.active_subscribers("replies").unwrap())
            .find(|s| s.email == email)
            .unwrap()
            .id
    }

    fn emails(store: &Store, digest: &str) -> Vec<String> {
        store
            .active_subscribers(digest)
            .unwrap()
            .into_iter()
            .map(|s| s.email)
            .collect()
    }

    #[test]
    fn leaving_a_digest_is_per_digest_idempotent_and_survives_a_list_rewrite() {
        let (_d, mut store) = store_with(&["a@x.org", "b@x.org"]);
        let a = id_of(&store, "a@x.org");
        assert!(store.leave_digest(a, "essays", crate::time::now()).unwrap());
        assert!(!store.leave_digest(a, "essays", crate::time::now()).unwrap());
        assert_eq!(emails(&store, "essays"), ["b@x.org"]);
        assert_eq!(emails(&store, "replies"), ["a@x.org", "b@x.org"]);
        // Re-adding through the CLI rewrites the list but not the subscriber's choice.
        let entry = crate::subscribers::Entry {
            email: "a@x.org".into(),
            name: Some("A".into()),
            timezone: None,
            digests: vec!["essays".into()],
        };
        store
            .upsert_subscriber(&entry, "cli", crate::time::now())
            .unwrap();
        assert_eq!(emails(&store, "essays"), ["b@x.org"]);
        assert!(!store
            .leave_digest(9999, "essays", crate::time::now())
            .unwrap());
    }

    #[test]
    fn a_confirmed_signup_brings_back_an_unsubscribed_address_and_is_idempotent() {
        let (_d, mut store) = store_with(&["a@x.org"]);
        let a = id_of(&store, "a@x.org");
        store.unsubscribe_id(a, crate::time::now()).unwrap();
        assert!(emails(&store, "essays").is_empty());
        // Preferences cannot bring them back: only a confirmed sign-up can.
        assert!(!store
            .set_preferences(a, &[("essays".into(), true)], None, crate::time::now())
            .unwrap());
        let s = store
            .create_signup(
                "a@x.org",
                None,
                Some("Asia/Tokyo"),
                &["essays".into()],
                crate::time::now(),
            )
            .unwrap();
        assert!(emails(&store, "essays").is_empty(), "not before confirming");
        assert_eq!(
            store.confirm_signup(s, crate::time::now()).unwrap(),
            Some(a)
        );
        assert_eq!(
            store.confirm_signup(s, crate::time::now()).unwrap(),
            Some(a)
        );
        assert_eq!(emails(&store, "essays"), ["a@x.org"]);
        let p = store.profile(a).unwrap().unwrap();
        assert_eq!(p.status, "active");
        assert_eq!(p.timezone.as_deref(), Some("Asia/Tokyo"));
        assert!(store.signup(s).unwrap().unwrap().confirmed_at.is_some());
        // Unsubscribed since: replaying the used link changes nothing.
        store
            .conn
            .execute(
                "UPDATE subscriber SET status = 'unsubscribed' WHERE id = ?1",
                [a],
            )
            .unwrap();
        assert_eq!(
            store.confirm_signup(s, crate::time::now()).unwrap(),
            Some(a)
        );
        assert_eq!(store.profile(a).unwrap().unwrap().status, "unsubscribed");
        assert_eq!(
            store.confirm_signup(s + 1, crate::time::now()).unwrap(),
            None
        );
    }

    #[test]
    fn preferences_tick_and_untick_digests_and_set_the_zone() {
        let (_d, mut store) = store_with(&["a@x.org"]);
        let a = id_of(&store, "a@x.org");
        store
            .set_preferences(
                a,
                &[("essays".into(), false), ("replies".into(), true)],
                Some("America/Chicago"),
                crate::time::now(),
            )
            .unwrap();
        let p = store.profile(a).unwrap().unwrap();
        assert_eq!(p.digests, ["replies"]);
        assert_eq!(p.timezone.as_deref(), Some("America/Chicago"));
        assert_eq!(
            store.active_subscribers("replies").unwrap()[0]
                .timezone
                .as_deref(),
            Some("America/Chicago")
        );
    }
}
