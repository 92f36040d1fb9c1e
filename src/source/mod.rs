//! Sources fetch essays and replies from one configured place, normalise and sanitise
//! them, and return plain values. They never write the store or know about digests.

pub mod bound;
pub mod dates;
pub mod feed;
pub mod folder;
pub mod http;
pub mod identity;
pub mod jsonfeed;
pub mod normalize;
pub mod policy;
pub mod prose;
pub mod sniff;
pub mod wordpress;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::SourceConfig;
use http::{HttpClient, HttpError, Validators};

/// One essay as a source saw it, already sanitised.
#[derive(Debug, Clone, PartialEq)]
pub struct Essay {
    /// Name of the source it came from.
    pub source: String,
    /// Stable identity within the source.
    pub key: String,
    /// Plain-text title.
    pub title: String,
    /// Plain-text author name.
    pub author: Option<String>,
    /// Public address.
    pub url: Option<String>,
    /// When the source says it was published.
    pub published_at: Option<DateTime<Utc>>,
    /// When the source says it was last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// Plain-text summary, if the source gives one.
    pub summary: Option<String>,
    /// Sanitised HTML body.
    pub content_html: String,
    /// Its id at the origin (`post:123` for WordPress), when the origin has one.
    pub origin_id: Option<String>,
}

/// One reader reply as a source saw it, already sanitised.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Name of the source it came from.
    pub source: String,
    /// Stable identity within the source.
    pub key: String,
    /// Key of the essay it answers.
    pub essay_key: String,
    /// Key of the reply it answers, for threads.
    pub parent_key: Option<String>,
    /// Plain-text author name; `None` when the reader left none.
    pub author: Option<String>,
    /// Public address of the reply.
    pub url: Option<String>,
    /// When the source says it was written.
    pub published_at: Option<DateTime<Utc>>,
    /// Sanitised HTML body.
    pub content_html: String,
    /// Its id at the origin (`comment:456` for WordPress), when the origin has one.
    pub origin_id: Option<String>,
}

/// Everything one gather of one source produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gathered {
    /// Essays found.
    pub essays: Vec<Essay>,
    /// Replies found.
    pub replies: Vec<Reply>,
    /// Older essays fetched only to place replies under; stored as archive, never news.
    pub context_essays: Vec<Essay>,
    /// What was fetched over HTTP, for the next conditional request.
    pub fetches: Vec<FetchRecord>,
    /// The API root discovered this time, to start from next time.
    pub api_root: Option<String>,
    /// Set when the source ran on a fallback route: what it read and why.
    pub route: Option<String>,
    /// Replies whose essay is not known yet; kept, and placed by a later gather.
    pub unplaced: Vec<Unplaced>,
}

/// A reply that could not be placed under an essay yet, with what may place it later.
#[derive(Debug, Clone, PartialEq)]
pub struct Unplaced {
    /// Its key.
    pub key: String,
    /// Its own page (`essay-url#comment-N`).
    pub url: Option<String>,
    /// Normalised `thr:in-reply-to` ref.
    pub in_reply_to: Option<String>,
    /// `thr:in-reply-to` href.
    pub in_reply_to_href: Option<String>,
    /// The comment it answers, from WordPress's "In reply to" line.
    pub reply_to_comment: Option<u64>,
    /// Plain-text author.
    pub author: Option<String>,
    /// When it was written.
    pub published_at: Option<DateTime<Utc>>,
    /// Sanitised HTML.
    pub content_html: String,
}

/// One URL fetched during a gather.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchRecord {
    /// The URL as configured or discovered.
    pub url: String,
    /// Set for an essay's own comment feed, so it is polled again later.
    pub essay_key: Option<String>,
    /// Validators for the next request (`None` after a 304: keep the stored ones).
    pub validators: Option<Validators>,
}

impl FetchRecord {
    /// A 200 with these validators.
    pub fn fetched(url: &str, essay_key: Option<&str>, v: &Validators) -> FetchRecord {
        FetchRecord {
            url: url.to_owned(),
            essay_key: essay_key.map(str::to_owned),
            validators: Some(v.clone()),
        }
    }

    /// A 304.
    pub fn not_modified(url: &str, essay_key: Option<&str>) -> FetchRecord {
        FetchRecord {
            url: url.to_owned(),
            essay_key: essay_key.map(str::to_owned),
            validators: None,
        }
    }
}

/// One source's way to the web: the shared client, held to the source's own site
/// ([`policy::SiteScope`]) and to its time budget for this gather.
#[derive(Clone)]
pub struct Fetcher {
    client: Arc<HttpClient>,
    scope: policy::SiteScope,
    budget: std::time::Duration,
    deadline: tokio::time::Instant,
}

impl Fetcher {
    /// A fetcher for the source `config`; its budget starts now (see [`Fetcher::start`]).
    pub fn new(client: Arc<HttpClient>, config: &SourceConfig) -> Fetcher {
        let (urls, limits): (Vec<&str>, Option<&crate::config::SourceLimits>) = match config {
            SourceConfig::Feed(f) => (
                std::iter::once(f.url.as_str())
                    .chain(f.comments_url.as_deref())
                    .collect(),
                Some(&f.limits),
            ),
            SourceConfig::WordPress(w) => (vec![w.base_url.as_str()], Some(&w.limits)),
            SourceConfig::Folder(_) => (Vec::new(), None),
        };
        let defaults = crate::config::SourceLimits::default();
        let limits = limits.unwrap_or(&defaults);
        Fetcher {
            client,
            scope: policy::SiteScope::new(urls, &limits.follow_hosts),
            budget: limits.gather_budget,
            deadline: tokio::time::Instant::now() + limits.gather_budget,
        }
    }

    /// Starts the budget afresh: called when the gather really begins (after waiting
    /// for a gather slot).
    pub fn start(&mut self) {
        self.deadline = tokio::time::Instant::now() + self.budget;
    }

    /// Whether `url` is on the source's site; the refusal says what to configure.
    pub fn in_scope(&self, url: &str) -> Result<(), HttpError> {
        self.scope.check(url).map_err(|r| HttpError::Refused {
            url: url.to_owned(),
            reason: r.0,
        })
    }

    /// GETs `url` if it is on the source's site, within the source's budget.
    pub async fn get(
        &self,
        url: &str,
        validators: Option<&Validators>,
        accept: &str,
    ) -> Result<http::Fetched, HttpError> {
        self.in_scope(url)?;
        let fetch = self
            .client
            .get_until(url, validators, accept, Some(self.deadline));
        tokio::time::timeout_at(self.deadline, fetch)
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::OutOfTime {
                    url: url.to_owned(),
                })
            })
    }

    /// The shared client, for requests outside a gather's budget.
    pub fn client(&self) -> &Arc<HttpClient> {
        &self.client
    }
}

/// What a source may know from earlier gathers; read from the store by the caller.
#[derive(Clone)]
pub struct GatherContext {
    /// The HTTP client, scoped to this source.
    pub http: Fetcher,
    /// Validators per URL from earlier fetches of this source.
    pub cache: HashMap<String, Validators>,
    /// Comment feeds found earlier: (url, essay key).
    pub comment_feeds: Vec<(String, String)>,
    /// Essays of this source already stored: (url, key), newest first.
    pub known_essays: Vec<(Option<String>, String)>,
    /// When this source last gathered successfully.
    pub since: Option<DateTime<Utc>>,
    /// Stored items by origin id: (key, updated_at); see `Store::source_memory`.
    pub origins: HashMap<String, (String, Option<DateTime<Utc>>)>,
    /// The API root found on an earlier gather.
    pub api_root: Option<String>,
    /// The time of this gather.
    pub now: DateTime<Utc>,
    /// Replies kept from earlier gathers until their essay is known.
    pub unplaced: Vec<Unplaced>,
}

impl GatherContext {
    /// Validators for a conditional request to `url`, if it was fetched before.
    pub fn validators(&self, url: &str) -> Option<&Validators> {
        self.cache.get(url)
    }
}

/// Why a source could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A fetch failed (after retries).
    #[error("{0}")]
    Http(#[from] HttpError),
    /// A feed document could not be parsed.
    #[error("{url}: {message}")]
    Feed {
        /// Where it came from.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file's content is malformed.
    #[error("{path}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it and how to fix it.
        message: String,
    },
}

/// Gathers one source. Every address that leaves a source is checked here, whatever the
/// source: only http(s) pages are kept (ARCHITECTURE.md invariant 8), so a feed's
/// `javascript:`, `data:`, `vbscript:` or `file:` link never reaches a template.
pub async fn gather(config: &SourceConfig, ctx: &GatherContext) -> Result<Gathered, SourceError> {
    let mut g = gather_raw(config, ctx).await?;
    let mut dropped = 0;
    let mut keep = |url: &mut Option<String>| {
        if url.as_deref().is_some_and(|u| !is_web_url(u)) {
            *url = None;
            dropped += 1;
        }
    };
    for e in g.essays.iter_mut().chain(g.context_essays.iter_mut()) {
        keep(&mut e.url);
    }
    for r in &mut g.replies {
        keep(&mut r.url);
    }
    for u in &mut g.unplaced {
        keep(&mut u.url);
    }
    if dropped > 0 {
        tracing::warn!(source = %config.name(), dropped, "Links that are not http(s) were dropped.");
    }
    Ok(g)
}

/// Runs CPU work (cleaning a REST page's HTML) where it does not hold up the async
/// workers: on a multi-threaded runtime the worker hands its other tasks on first.
pub(crate) fn cpu<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Whether an address is an http(s) URL with a host: the only links Gazette renders.
pub fn is_web_url(url: &str) -> bool {
    url::Url::parse(url.trim()).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    })
}

async fn gather_raw(config: &SourceConfig, ctx: &GatherContext) -> Result<Gathered, SourceError> {
    match config {
        SourceConfig::Folder(f) => {
            let f = f.clone();
            let path = f.path.clone();
            tokio::task::spawn_blocking(move || folder::gather(&f))
                .await
                .unwrap_or_else(|e| {
                    Err(SourceError::Malformed {
                        path,
                        message: format!("gathering stopped unexpectedly: {e}"),
                    })
                })
        }
        SourceConfig::Feed(f) => feed::gather(f, ctx).await,
        SourceConfig::WordPress(w) => wordpress::gather(w, ctx).await,
    }
}
