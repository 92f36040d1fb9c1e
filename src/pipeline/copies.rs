//! One reader's copy of an edition: the edition's context with the reader's own values
//! (address, links, follow links, their frozen threads) swapped in, rendered and built
//! into a message. Owned, so copies render on worker threads.

use super::*;

/// Everything needed to make any copy of one edition, owned so that copies can be
/// rendered on worker threads.
pub(super) struct CopyMaker {
    pub(super) renderer: Arc<Renderer>,
    pub(super) dkim: Option<Arc<lettre::message::dkim::DkimConfig>>,
    pub(super) links: Option<Links>,
    pub(super) site: Site,
    pub(super) digest: Digest,
    pub(super) number: i64,
    pub(super) at: DateTime<Utc>,
    /// The edition's context, serialised once; each copy swaps in its recipient.
    pub(super) base: tera::Context,
    /// Contexts handed back by finished copies, reused instead of copying `base`.
    pub(super) spare: std::sync::Mutex<Vec<tera::Context>>,
    /// CSS inlining shared between copies where that is exact.
    pub(super) inlined: InlineMemo,
    /// Every thread of the edition, for a `replies = "followed"` digest whose copies
    /// each carry their own subset.
    pub(super) threads: Option<Vec<tera::Value>>,
    /// The digest's archive index, for List-Archive (`archive = true` with `[web]`).
    pub(super) list_archive: Option<String>,
    /// The envelope sender (`delivery.return_path`), if not the From address.
    pub(super) return_path: Option<lettre::Address>,
    /// VERP envelope senders (`delivery.verp`).
    pub(super) verp: bool,
    /// Signs each reader's mailto unsubscribe tag.
    pub(super) signer: Arc<crate::token::Signer>,
    /// Where List-Unsubscribe's mailto goes (`Config::inbound_address`).
    pub(super) inbound_address: lettre::Address,
}

/// Puts `value` into `ctx` under `key` without copying it (Context::insert would
/// serialise it again).
fn put(ctx: &mut tera::Context, key: &str, value: tera::Value) {
    let mut one = serde_json::Map::new();
    one.insert(key.to_owned(), value);
    if let Ok(c) = tera::Context::from_value(tera::Value::Object(one)) {
        ctx.extend(c);
    }
}

/// The row id a view object (essay or thread's essay) names.
fn essay_id(v: &tera::Value) -> i64 {
    v.get("id").and_then(tera::Value::as_i64).unwrap_or(0)
}

/// One copy to check: its reader and its frozen threads.
pub(super) type Copy<'a> = (&'a SubscriberRow, Option<&'a [i64]>);

/// One recipient's links.
struct CopyLinks {
    unsubscribe: String,
    preferences: Option<String>,
    mailto: String,
}

impl CopyMaker {
    fn links_for(&self, s: &SubscriberRow) -> CopyLinks {
        let digest = &self.digest;
        // Test copies (no subscriber row) get the untagged address.
        let tag = (s.id > 0).then(|| self.signer.mail_tag(s.id, &digest.name));
        let mailto =
            deliver::unsubscribe_mailto(&self.inbound_address, &digest.name, tag.as_deref());
        match &self.links {
            Some(l) => CopyLinks {
                unsubscribe: l.unsubscribe(s.id, &digest.name),
                preferences: Some(l.preferences(s.id, &digest.name)),
                mailto,
            },
            None => CopyLinks {
                unsubscribe: mailto.clone(),
                preferences: None,
                mailto,
            },
        }
    }

    /// Runs `f` on the context of one subscriber's copy; `threads` is the copy's frozen
    /// thread list (`None`: every thread).
    fn with_context<T>(
        &self,
        s: &SubscriberRow,
        links: &CopyLinks,
        threads: Option<&[i64]>,
        f: impl FnOnce(&tera::Context) -> T,
    ) -> T {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut ctx = spare.unwrap_or_else(|| self.base.clone());
        ctx.insert(
            "subscriber",
            &SubscriberInfo {
                name: s.name.clone(),
                email: s.email.clone(),
                timezone: s
                    .timezone
                    .clone()
                    .unwrap_or_else(|| self.digest.timezone.name().to_owned()),
            },
        );
        ctx.insert("unsubscribe_url", &links.unsubscribe);
        ctx.insert("preferences_url", &links.preferences);
        self.personal_threads(&mut ctx, s, threads);
        let out = f(&ctx);
        self.spare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ctx);
        out
    }

    /// The reader's own links beside each essay and thread, and (for a `followed`
    /// digest) only their threads. Values are changed in place or moved, never
    /// serialised again, so a copy costs what it did before follows.
    fn personal_threads(
        &self,
        ctx: &mut tera::Context,
        s: &SubscriberRow,
        threads: Option<&[i64]>,
    ) {
        let links = self.links.as_ref().filter(|_| s.id > 0);
        if let Some(l) = links {
            if let Some(tera::Value::Array(mut essays)) = ctx.remove("essays") {
                for e in &mut essays {
                    let id = essay_id(e);
                    if let Some(o) = e.as_object_mut().filter(|_| id > 0) {
                        o.insert("follow_url".into(), tera::Value::String(l.follow(s.id, id)));
                    }
                }
                put(ctx, "essays", tera::Value::Array(essays));
            }
        }
        let Some(all) = &self.threads else {
            return;
        };
        // A reader who follows every thread gets the edition's own array, changed in
        // place (as an `all` copy would); only a subset is copied, and it is theirs.
        let every = threads.is_none_or(|ids| ids.len() >= all.len());
        let mut mine: Vec<tera::Value> = match (every, ctx.remove("threads")) {
            (true, Some(tera::Value::Array(v))) if v.len() == all.len() => v,
            (true, _) => all.clone(),
            (false, _) => {
                let ids = threads.unwrap_or_default();
                all.iter()
                    .filter(|t| t.get("essay").is_some_and(|e| ids.contains(&essay_id(e))))
                    .cloned()
                    .collect()
            }
        };
        let mut count = 0;
        for t in &mut mine {
            count += t
                .get("replies")
                .and_then(tera::Value::as_array)
                .map_or(0, Vec::len);
            let id = t.get("essay").map_or(0, essay_id);
            if let (Some(l), Some(o)) = (links, t.as_object_mut()) {
                if id > 0 {
                    o.insert(
                        "unfollow_url".into(),
                        tera::Value::String(l.unfollow(s.id, id)),
                    );
                }
            }
        }
        put(ctx, "threads", tera::Value::Array(mine));
        put(ctx, "reply_count", tera::Value::from(count));
    }

    /// Runs one subscriber's templates (no CSS inlining, no message): the pre-flight.
    pub(super) fn check(
        &self,
        s: &SubscriberRow,
        threads: Option<&[i64]>,
    ) -> Result<(), PipelineError> {
        let links = self.links_for(s);
        Ok(self.with_context(s, &links, threads, |ctx| {
            self.renderer.check_context(&self.digest, ctx)
        })?)
    }

    /// Checks every subscriber's copy, on every core; the first failure in list order
    /// is reported.
    pub(super) fn check_all(&self, subscribers: &[Copy]) -> Result<(), PipelineError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = subscribers.len().div_ceil(cores).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = subscribers
                .chunks(per)
                .map(|part| {
                    scope.spawn(move || part.iter().try_for_each(|(s, t)| self.check(s, *t)))
                })
                .collect();
            // Joined in order, so the error reported is the first subscriber's.
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(PipelineError::Worker("pre-flight check".into())))
            })
        })
    }

    /// Renders and builds one subscriber's message.
    pub(super) fn make(
        &self,
        s: &SubscriberRow,
        threads: Option<&[i64]>,
    ) -> Result<Outgoing, PipelineError> {
        let (digest, number) = (&self.digest, self.number);
        let links = self.links_for(s);
        // The recipient's own values, for sharing CSS inlining between copies.
        let mut values: Vec<&str> = vec![s.email.as_str(), links.unsubscribe.as_str()];
        values.extend(s.name.as_deref());
        values.extend(links.preferences.as_deref());
        let body = self.with_context(s, &links, threads, |ctx| {
            self.renderer
                .render_copy(digest, ctx, &values, &self.inlined)
        })?;
        let id = deliver::message_id(
            &digest.name,
            number,
            &s.email,
            self.site.from.email.domain(),
        );
        let hash = id
            .trim_start_matches('<')
            .split('@')
            .next()
            .unwrap_or_default()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(deliver::build_message(
            &Addressing {
                site: &self.site,
                digest,
                edition: number,
                email: &s.email,
                name: s.name.as_deref(),
                date: self.at,
                file_stem: format!("{}-{number:04}-{hash}", digest.name),
                dkim: self.dkim.as_deref(),
                one_click: links
                    .preferences
                    .is_some()
                    .then_some(links.unsubscribe.as_str()),
                list_archive: self.list_archive.as_deref(),
                return_path: self.return_path.as_ref(),
                verp: self.verp,
                mailto: &links.mailto,
            },
            &body,
        )?)
    }
}
