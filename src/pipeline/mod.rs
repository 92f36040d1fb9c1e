//! Drives the stages for one `gather` or `send`: the order of work and what is reported,
//! no parsing, selection or rendering rules of its own.
//!
//! A send renders every copy of an edition before the edition is recorded or anything
//! reaches a transport, so a template error can never leave half a digest delivered.

mod copies;
mod delivery;
mod gathering;
mod retract;

use copies::{Copy, CopyMaker};
pub use gathering::{gather, gather_some};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use chrono::{DateTime, Utc};
use lettre::Address;

use crate::config::{Config, Digest, Site, SourceConfig};
use crate::deliver::{
    self, Addressing, BuildError, DeliverError, Outgoing, Pacing, SendError, StopSignal, Tally,
    Transport,
};
use crate::edition::{self, DigestView, Selection};
use crate::render::{
    DigestInfo, EditionInfo, InlineMemo, MessageContext, RenderError, Renderer, SiteInfo,
    SubscriberInfo,
};
use crate::source::{self, http::HttpClient, http::HttpError, GatherContext};
use crate::store::{self, Added, NewEdition, Store, StoreError, SubscriberRow};
use crate::time;
use crate::token::Links;

/// What `send` does with the messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Record editions and deliver through the configured transport.
    Deliver,
    /// Render everything and report; change nothing anywhere.
    DryRun,
    /// Write each copy's .eml, .html and .txt into a folder; record nothing.
    Preview(PathBuf),
    /// Send one copy of each digest's next edition to this address; record nothing.
    TestTo(Address),
}

/// Hears how delivery of an edition advances (the CLI draws a progress bar).
pub trait Progress: Send + Sync {
    /// An edition's delivery starts with `total` messages owed.
    fn start(&self, digest: &str, edition: i64, total: usize);
    /// `done` of them are settled.
    fn advance(&self, done: usize);
    /// Delivery of that edition ended.
    fn finish(&self);
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str, _: i64, _: usize) {}
    fn advance(&self, _: usize) {}
    fn finish(&self) {}
}

/// Options for [`send`].
#[derive(Clone)]
pub struct SendOptions {
    /// Only this digest (default: all).
    pub digest: Option<String>,
    /// What to do with the messages.
    pub mode: Mode,
    /// Only finish unfinished editions: no gathering, no new edition.
    pub resume_only: bool,
    /// Gather every source first (the daemon gathers on its own clock instead).
    pub gather: bool,
    /// The schedule tick a new edition belongs to (the daemon's); `None`: now.
    pub tick: Option<DateTime<Utc>>,
    /// For local-time digests, only this audience (time zone); `None`: every audience.
    pub audience: Option<String>,
    /// Wait within this send for deferred messages that come due soon
    /// (`delivery.retry_within_run`); the daemon retries on its own clock instead.
    pub wait_for_retries: bool,
    /// Asks the send to stop early (the daemon's SIGTERM).
    pub stop: StopSignal,
    /// Where delivery progress goes.
    pub progress: Arc<dyn Progress>,
    /// Only this subscriber's copy (an address; for previews).
    pub only: Option<String>,
}

impl SendOptions {
    /// What a one-off `gazette send` does: gather, then deliver everything owed.
    pub fn new(mode: Mode, progress: Arc<dyn Progress>) -> SendOptions {
        SendOptions {
            digest: None,
            mode,
            resume_only: false,
            gather: true,
            tick: None,
            audience: None,
            wait_for_retries: true,
            stop: StopSignal::never(),
            progress,
            only: None,
        }
    }
}

/// The result of gathering one source.
#[derive(Debug, Clone, PartialEq)]
pub struct GatherOutcome {
    /// Source name.
    pub source: String,
    /// New items, or why the source failed.
    pub result: Result<Added, String>,
}

/// What happened to one digest during a send.
#[derive(Debug, Clone, PartialEq)]
pub enum DigestOutcome {
    /// Nothing new since the previous edition; no edition was made.
    NothingNew {
        /// Digest name.
        digest: String,
        /// Start of the window that turned out empty.
        since: DateTime<Utc>,
    },
    /// Nobody is subscribed; no edition was made and the items wait.
    NoSubscribers {
        /// Digest name.
        digest: String,
    },
    /// Another process created this edition first.
    AlreadyCreated {
        /// Digest name.
        digest: String,
    },
    /// An edition was (or, for dry runs and previews, would be) delivered.
    Delivered {
        /// Digest name.
        digest: String,
        /// Edition number (0 for a test copy).
        edition: i64,
        /// An unfinished edition from an earlier run was continued.
        resumed: bool,
        /// Essays in it.
        essays: usize,
        /// Replies in it.
        replies: usize,
        /// What delivery did.
        tally: Tally,
    },
}

/// Everything one send did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendReport {
    /// Per source.
    pub gathered: Vec<GatherOutcome>,
    /// Per digest (resumed editions first).
    pub digests: Vec<DigestOutcome>,
}

impl SendReport {
    /// Sources that failed to gather.
    pub fn failed_sources(&self) -> usize {
        self.gathered.iter().filter(|g| g.result.is_err()).count()
    }

    /// Deliveries that were deferred or failed.
    pub fn undelivered(&self) -> usize {
        self.digests
            .iter()
            .map(|d| match d {
                DigestOutcome::Delivered { tally, .. } => tally.deferred + tally.failed.len(),
                _ => 0,
            })
            .sum()
    }
}

/// A send or gather could not go on.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client could not be set up.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A template failed; the edition was not created and nothing was sent.
    #[error("{0}; nothing was sent for this edition")]
    Render(#[from] RenderError),
    /// A message could not be built; nothing was sent for this edition.
    #[error("{0}; nothing was sent for this edition")]
    Build(#[from] BuildError),
    /// The ledger failed mid-delivery.
    #[error("delivery stopped, the ledger could not be updated: {0}")]
    Ledger(StoreError),
    /// A rendering worker panicked (a bug); what was sent is recorded.
    #[error("delivery stopped, a rendering worker failed: {0}; run `gazette send --resume` to finish the edition")]
    Worker(String),
    /// The transport could not be set up.
    #[error(transparent)]
    Transport(#[from] SendError),
    /// The DKIM key could not be used.
    #[error("cannot sign with the DKIM key: {0}")]
    Dkim(String),
    /// The secret that signs unsubscribe links and mailto tags could not be used.
    #[error("{0}; it signs unsubscribe links and mailto tags (choose it in `[web]`: `secret_file` or `secret_env`)")]
    Token(#[from] crate::token::TokenError),
    /// `--digest` named a digest the config does not define.
    #[error("no digest named `{name}` in the config; defined digests: {known}")]
    UnknownDigest {
        /// The name given.
        name: String,
        /// The names defined.
        known: String,
    },
    /// `--to` found nothing to send a test copy of.
    #[error("digest `{0}` has no content yet (nothing gathered and no earlier edition); nothing to send a test copy of")]
    NothingToTest(String),
}

/// A time strictly after `t`, read from the clock: items first seen at `t` then fall
/// inside a window ending at it.
fn after(t: DateTime<Utc>) -> DateTime<Utc> {
    time::now().max(t + chrono::Duration::microseconds(1))
}

/// An edition's view, the same for every reader: its items, the essays its replies
/// answer, and reply counts taken up to `upto` (its window's end), so the view is the
/// same whenever the edition is rendered.
pub fn edition_view(
    store: &Store,
    sel: &Selection,
    upto: DateTime<Utc>,
) -> Result<DigestView, StoreError> {
    let mut keys: Vec<(String, String)> = sel
        .replies
        .iter()
        .map(|r| (r.reply.source.clone(), r.reply.essay_key.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    let parents = store.essays_by_key(&keys)?;
    let mut view = edition::compose(sel, &parents);
    // Where the argument is: every essay shows how many replies it has drawn.
    let ids: Vec<i64> = view
        .essays
        .iter()
        .chain(view.threads.iter().map(|t| &t.essay))
        .map(|e| e.id)
        .collect();
    let counts = store.reply_counts(&ids, upto)?;
    for (e, n) in view
        .essays
        .iter_mut()
        .chain(view.threads.iter_mut().map(|t| &mut t.essay))
        .zip(counts)
    {
        e.reply_count = n;
    }
    Ok(view)
}

impl From<DeliverError<PipelineError>> for PipelineError {
    fn from(e: DeliverError<PipelineError>) -> Self {
        match e {
            DeliverError::Ledger(s) => PipelineError::Ledger(s),
            DeliverError::Build(b) => b,
            DeliverError::Worker(w) => PipelineError::Worker(w),
        }
    }
}

/// Gathers, then makes and delivers each digest's next edition (continuing unfinished
/// ones first). With `resume_only`, only unfinished editions are continued.
pub async fn send(config: &Config, opts: &SendOptions) -> Result<SendReport, PipelineError> {
    let digests: Vec<&Digest> = match &opts.digest {
        Some(name) => vec![config
            .digests
            .iter()
            .find(|d| &d.name == name)
            .ok_or_else(|| PipelineError::UnknownDigest {
                name: name.clone(),
                known: config
                    .digests
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?],
        None => config.digests.iter().collect(),
    };
    let renderer = Arc::new(Renderer::load(config)?);
    let dkim = config
        .delivery
        .dkim
        .as_ref()
        .map(deliver::dkim_signer)
        .transpose()
        .map_err(PipelineError::Dkim)?
        .map(Arc::new);
    let links = config.web.as_ref().map(Links::load).transpose()?;
    let mut store = match opts.mode {
        Mode::Deliver => Store::connect(&config.state)?,
        _ => Store::scratch_of(&config.state)?,
    };
    // After the store: a folder that cannot be written is reported as the database's.
    let signer = match (&links, config.token_secret()) {
        (Some(l), _) => l.shared_signer(),
        // A dry run, preview or test copy records nothing, not even a new secret.
        (None, crate::config::SecretSource::File(p))
            if !matches!(opts.mode, Mode::Deliver) && !p.exists() =>
        {
            Arc::new(crate::token::Signer::ephemeral()?)
        }
        (None, secret) => Arc::new(crate::token::Signer::from_source(&secret)?),
    };
    let gathered_at = time::now();
    store.sync_subscribers(&config.subscribers, gathered_at)?;
    let mut report = SendReport::default();
    if opts.gather && !opts.resume_only {
        report.gathered = gather(config, &mut store, gathered_at).await?;
    }
    let transport = match &opts.mode {
        Mode::Deliver | Mode::TestTo(_) => Transport::from_config(&config.delivery.transport)?,
        Mode::DryRun => Transport::DryRun,
        Mode::Preview(dir) => Transport::Preview(dir.clone()),
    };
    let run = Run {
        config,
        renderer,
        transport: &transport,
        dkim,
        links,
        signer,
        opts,
    };
    for digest in digests {
        if let Mode::TestTo(addr) = &opts.mode {
            report
                .digests
                .push(run.test_copy(&mut store, digest, addr, gathered_at).await?);
            continue;
        }
        for ed in store.unfinished_editions(&digest.name)? {
            let (essays, replies) = store.edition_items(ed.id)?;
            let more_essays = store.edition_more_essays(ed.id)?;
            let sel = Selection {
                essays,
                replies,
                more_essays,
            };
            let maker = run.maker(
                digest,
                ed.number,
                ed.scheduled_for,
                run.view(&store, &sel, ed.window_to)?,
            )?;
            tracing::info!(digest = %digest.name, edition = ed.number, "Resuming unfinished edition.");
            let tally = run.deliver_edition(&mut store, &ed, maker, false).await?;
            let stopped = tally.stopped;
            report.digests.push(DigestOutcome::Delivered {
                digest: digest.name.clone(),
                edition: ed.number,
                resumed: true,
                essays: sel.essays.len(),
                replies: sel.replies.len(),
                tally,
            });
            if stopped {
                return Ok(report);
            }
        }
        if opts.resume_only {
            continue;
        }
        let audiences: Vec<String> = match (&opts.audience, digest.local_time) {
            (_, false) => vec![String::new()],
            (Some(zone), true) => vec![zone.clone()],
            (None, true) => audiences(&store, digest)?,
        };
        for audience in audiences {
            if opts.stop.is_set() {
                return Ok(report);
            }
            report.digests.push(
                run.next_edition(&mut store, digest, gathered_at, &audience)
                    .await?,
            );
        }
    }
    Ok(report)
}

/// The time zones of a local-time digest's active readers (the digest's own zone for
/// readers without one): each is an audience with its own editions.
pub fn audiences(store: &Store, digest: &Digest) -> Result<Vec<String>, StoreError> {
    let mut zones: Vec<String> = store
        .active_subscribers(&digest.name)?
        .into_iter()
        .map(|s| audience_of(digest, &s))
        .collect();
    zones.sort();
    zones.dedup();
    Ok(zones)
}

fn audience_of(digest: &Digest, s: &SubscriberRow) -> String {
    s.timezone
        .clone()
        .unwrap_or_else(|| digest.timezone.name().to_owned())
}

struct Run<'a> {
    config: &'a Config,
    renderer: Arc<Renderer>,
    transport: &'a Transport,
    dkim: Option<Arc<lettre::message::dkim::DkimConfig>>,
    links: Option<Links>,
    signer: Arc<crate::token::Signer>,
    opts: &'a SendOptions,
}

impl Run<'_> {
    async fn next_edition(
        &self,
        store: &mut Store,
        digest: &Digest,
        gathered_at: DateTime<Utc>,
        audience: &str,
    ) -> Result<DigestOutcome, PipelineError> {
        let prev = store.last_edition(&digest.name)?;
        let prev_here = store.last_edition_for(&digest.name, audience)?;
        let at = after(gathered_at);
        // A reader's copy covers what is new since their audience's previous edition.
        let window = edition::next_window(digest, prev_here.as_ref(), at);
        let mut sel = edition::select(
            digest,
            &window,
            store.essays_seen_between(&digest.sources, window.from, window.to)?,
            store.replies_seen_between(&digest.sources, window.from, window.to)?,
        );
        retract::drop_retracted(self.config, store, &mut sel).await?;
        if sel.is_empty() && digest.skip_if_empty {
            return Ok(DigestOutcome::NothingNew {
                digest: digest.name.clone(),
                since: window.from,
            });
        }
        let mut subscribers = store.active_subscribers(&digest.name)?;
        if !audience.is_empty() {
            subscribers.retain(|s| audience_of(digest, s) == audience);
        }
        if let Some(only) = &self.opts.only {
            subscribers.retain(|s| s.email.eq_ignore_ascii_case(only));
        }
        if subscribers.is_empty() {
            return Ok(DigestOutcome::NoSubscribers {
                digest: digest.name.clone(),
            });
        }
        let number = prev.map(|p| p.number + 1).unwrap_or(1);
        let scheduled_for = self.opts.tick.unwrap_or(at);
        let view = self.view(store, &sel, window.to)?;
        // `replies = "followed"`: each reader's threads are decided now and frozen with
        // the edition, so a resumed copy is the same whatever was followed meanwhile.
        let mut threads: HashMap<i64, Vec<i64>> = HashMap::new();
        if digest.replies == crate::config::Replies::Followed {
            let ids: Vec<i64> = view
                .threads
                .iter()
                .map(|t| t.essay.id)
                .filter(|id| *id > 0)
                .collect();
            let followers = store.followers_of(&ids)?;
            for s in &subscribers {
                let theirs = followers.get(&s.id);
                let mine: Vec<i64> = ids
                    .iter()
                    .copied()
                    .filter(|id| theirs.is_some_and(|t| t.contains(id)))
                    .collect();
                threads.insert(s.id, mine);
            }
            if digest.skip_if_empty && sel.essays.is_empty() {
                // Nothing new under a reader's follows: no copy for them this time.
                subscribers.retain(|s| threads.get(&s.id).is_some_and(|t| !t.is_empty()));
                if subscribers.is_empty() {
                    return Ok(DigestOutcome::NothingNew {
                        digest: digest.name.clone(),
                        since: window.from,
                    });
                }
            }
        }
        let maker = self.maker(digest, number, scheduled_for, view)?;
        // Every copy is rendered once before the edition exists: a template error stops
        // here, with nothing recorded and nothing sent. Copies are rendered again, a few
        // chunks ahead of sending, so a large edition is never all in memory.
        let copies: Vec<Copy> = subscribers
            .iter()
            .map(|s| (s, threads.get(&s.id).map(Vec::as_slice)))
            .collect();
        maker.check_all(&copies)?;
        drop(copies);
        let created = store.create_edition(
            &NewEdition {
                digest: digest.name.clone(),
                audience: audience.to_owned(),
                number,
                scheduled_for,
                window_from: window.from,
                window_to: window.to,
                essays: sel.essays.iter().map(|e| e.id).collect(),
                replies: sel.replies.iter().map(|r| r.id).collect(),
                subscribers: subscribers.iter().map(|s| s.id).collect(),
                more_essays: sel.more_essays,
                threads,
            },
            at,
        )?;
        let Some(ed) = created else {
            return Ok(DigestOutcome::AlreadyCreated {
                digest: digest.name.clone(),
            });
        };
        tracing::info!(digest = %digest.name, edition = ed.number, audience = %audience, essays = sel.essays.len(),
            replies = sel.replies.len(), subscribers = subscribers.len(), "Created edition.");
        // "Follow every new essay I am sent": the essays of this copy are followed now,
        // for the replies editions to come (this edition is already decided).
        if !sel.essays.is_empty() {
            let ids: Vec<i64> = subscribers.iter().map(|s| s.id).collect();
            let readers = store.auto_followers(&ids, digest.auto_follow)?;
            if !readers.is_empty() {
                let essays: Vec<i64> = sel.essays.iter().map(|e| e.id).collect();
                store.follow_all(&readers, &essays, at)?;
            }
        }
        // The ledger holds the list now; delivery reads it back a page at a time.
        drop(subscribers);
        let tally = self.deliver_edition(store, &ed, maker, true).await?;
        Ok(DigestOutcome::Delivered {
            digest: digest.name.clone(),
            edition: ed.number,
            resumed: false,
            essays: sel.essays.len(),
            replies: sel.replies.len(),
            tally,
        })
    }

    async fn test_copy(
        &self,
        store: &mut Store,
        digest: &Digest,
        to: &Address,
        gathered_at: DateTime<Utc>,
    ) -> Result<DigestOutcome, PipelineError> {
        let prev = store.last_edition(&digest.name)?;
        let at = after(gathered_at);
        let window = edition::next_window(digest, prev.as_ref(), at);
        let mut sel = edition::select(
            digest,
            &window,
            store.essays_seen_between(&digest.sources, window.from, window.to)?,
            store.replies_seen_between(&digest.sources, window.from, window.to)?,
        );
        if sel.is_empty() {
            if let Some(p) = &prev {
                let (essays, replies) = store.edition_items(p.id)?;
                let more_essays = store.edition_more_essays(p.id)?;
                sel = Selection {
                    essays,
                    replies,
                    more_essays,
                };
            }
        }
        if sel.is_empty() {
            return Err(PipelineError::NothingToTest(digest.name.clone()));
        }
        let maker = self.maker(digest, 0, at, self.view(store, &sel, window.to)?)?;
        let subscriber = SubscriberRow {
            id: 0,
            email: to.to_string(),
            name: None,
            timezone: None,
            status: "active".into(),
        };
        let mut msg = maker.make(&subscriber, None)?;
        msg.file_stem = format!("{}-test-{}", msg.file_stem, at.format("%Y%m%dT%H%M%S%.6f"));
        let mut tally = Tally::default();
        match self.transport.send(&msg).await {
            Ok(_) => tally.sent += 1,
            Err(e) => tally.failed.push((msg.to.clone(), e.to_string())),
        }
        Ok(DigestOutcome::Delivered {
            digest: digest.name.clone(),
            edition: 0,
            resumed: false,
            essays: sel.essays.len(),
            replies: sel.replies.len(),
            tally,
        })
    }

    /// The edition's view; see [`edition_view`].
    fn view(
        &self,
        store: &Store,
        sel: &Selection,
        upto: DateTime<Utc>,
    ) -> Result<DigestView, StoreError> {
        edition_view(store, sel, upto)
    }

    /// An archived digest's public page of edition `number` (none for test copies).
    fn archive_url(&self, digest: &Digest, number: i64) -> Option<String> {
        let l = self
            .links
            .as_ref()
            .filter(|_| digest.archive && number > 0)?;
        Some(crate::web::archive_url(
            l.base(),
            &digest.name,
            Some(number),
        ))
    }

    fn maker(
        &self,
        digest: &Digest,
        number: i64,
        at: DateTime<Utc>,
        view: DigestView,
    ) -> Result<CopyMaker, PipelineError> {
        let site = &self.config.site;
        let base = Renderer::context(
            digest,
            &MessageContext {
                site: &SiteInfo {
                    name: site.name.clone(),
                    base_url: site.base_url.clone(),
                },
                digest: &DigestInfo {
                    name: digest.name.clone(),
                    title: digest.title.clone(),
                },
                edition: &EditionInfo {
                    number,
                    date: store::ts(at),
                },
                // Replaced in every copy.
                subscriber: SubscriberInfo {
                    name: None,
                    email: String::new(),
                    timezone: digest.timezone.name().to_owned(),
                },
                view: &view,
                unsubscribe_url: String::new(),
                preferences_url: None,
                archive_url: self.archive_url(digest, number),
                public: false,
            },
        )?;
        let threads = (digest.replies == crate::config::Replies::Followed)
            .then(|| base.get("threads").and_then(tera::Value::as_array).cloned())
            .flatten();
        Ok(CopyMaker {
            renderer: Arc::clone(&self.renderer),
            dkim: self.dkim.clone(),
            links: self.links.clone(),
            site: site.clone(),
            digest: digest.clone(),
            number,
            at,
            base,
            spare: std::sync::Mutex::new(Vec::new()),
            inlined: InlineMemo::default(),
            threads,
            list_archive: self
                .links
                .as_ref()
                .filter(|_| digest.archive)
                .map(|l| crate::web::archive_url(l.base(), &digest.name, None)),
            return_path: self.config.delivery.return_path.clone(),
            verp: self.config.delivery.verp,
            signer: Arc::clone(&self.signer),
            inbound_address: self.config.inbound_address().clone(),
        })
    }
}
