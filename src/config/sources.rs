//! `[[source]]`: folder, feed and WordPress sources and their limits, with their validation.

use super::*;

/// One configured source, built from `[[source]]` by its `type`.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// A local folder of Markdown essays and TOML reply files.
    Folder(FolderSourceConfig),
    /// An RSS, Atom or JSON feed, with comment feeds.
    Feed(FeedSourceConfig),
    /// A WordPress site's REST API.
    WordPress(WordPressSourceConfig),
}

impl SourceConfig {
    /// The source's unique name.
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Folder(f) => &f.name,
            SourceConfig::Feed(f) => &f.name,
            SourceConfig::WordPress(w) => &w.name,
        }
    }
}

/// `type = "folder"`.
#[derive(Debug, Clone)]
pub struct FolderSourceConfig {
    /// Unique source name.
    pub name: String,
    /// The folder.
    pub path: PathBuf,
    /// Public URL under which essays are published (`<base_url>/<slug>/`).
    pub base_url: String,
}

/// `type = "feed"`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSourceConfig {
    /// Unique source name.
    pub name: String,
    /// The essays feed.
    pub url: String,
    /// A site-wide comments feed (WordPress: `/comments/feed/`).
    pub comments_url: Option<String>,
    /// Follow each essay's own comment feed (`wfw:commentRss`, Atom `rel="replies"`).
    pub comment_feeds: bool,
    /// Poll the comment feeds of at most this many essays, newest first.
    pub comment_feed_limit: usize,
    /// What it may fetch and how much one gather may take.
    pub limits: SourceLimits,
}

/// The fetch policy and caps of one web source (see `source::policy`).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceLimits {
    /// Its own host may be a private address (an intranet feed).
    pub allow_private: bool,
    /// Hosts besides its own that discovered URLs may point at.
    pub follow_hosts: Vec<String>,
    /// At most this many new items per gather; the rest wait for the next one.
    pub max_new_items: usize,
    /// Wall-clock budget of one gather, retries and waits included.
    pub gather_budget: std::time::Duration,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            allow_private: false,
            follow_hosts: Vec::new(),
            max_new_items: 50,
            gather_budget: std::time::Duration::from_secs(300),
        }
    }
}

/// `type = "wordpress"`.
#[derive(Debug, Clone, PartialEq)]
pub struct WordPressSourceConfig {
    /// Unique source name.
    pub name: String,
    /// The site's address, without a trailing slash.
    pub base_url: String,
    /// At most this many pages of 100 posts or comments per gather.
    pub max_pages: u32,
    /// How far back each gather re-lists posts and comments (ids only), to catch
    /// scheduled posts and comments approved after they were written.
    pub recheck_window: chrono::Duration,
    /// Mail password-protected posts (title and link only, never their content).
    pub include_protected: bool,
    /// What it may fetch and how much one gather may take.
    pub limits: SourceLimits,
}

impl Validator<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn source_limits(&mut self, s: &raw::RawSource, key: &str) -> SourceLimits {
        let mut l = SourceLimits {
            allow_private: s.allow_private.as_ref().is_some_and(|b| *b.get_ref()),
            ..SourceLimits::default()
        };
        for h in s.follow_hosts.iter().flat_map(|v| v.get_ref()) {
            let host = h.get_ref().trim().to_ascii_lowercase();
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
            {
                self.at_span(
                    h,
                    format!("`{key}.follow_hosts`: \"{}\" is not a host name; write e.g. \"comments.example.org\"", h.get_ref()),
                );
            } else {
                l.follow_hosts.push(host);
            }
        }
        if let Some(n) = self.count(&s.max_new_items, &format!("{key}.max_new_items"), 1) {
            l.max_new_items = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(v) = &s.gather_budget {
            l.gather_budget = self.interval(v, &format!("{key}.gather_budget"));
        }
        l
    }

    pub(super) fn source(
        &mut self,
        s: &RawSource,
        name: &S,
        kind: &S,
        key: &str,
        resolve: &dyn Fn(&str) -> PathBuf,
        site_url: Option<&str>,
    ) -> Option<SourceConfig> {
        let name_span = name;
        let name = name.get_ref().trim().to_owned();
        if name.is_empty() || name.contains(char::is_control) {
            self.at_span(
                name_span,
                format!("`{key}.name` must be a non-empty single line"),
            );
        }
        let kind_name = kind.get_ref().as_str();
        let applies: &[&str] = match kind_name {
            "folder" => &["path", "base_url"],
            "feed" => &[
                "url",
                "comments_url",
                "comment_feeds",
                "comment_feed_limit",
                "allow_private",
                "follow_hosts",
                "max_new_items",
                "gather_budget",
            ],
            "wordpress" => &[
                "base_url",
                "max_pages",
                "recheck_window",
                "include_protected",
                "allow_private",
                "follow_hosts",
                "max_new_items",
                "gather_budget",
            ],
            _ => &[],
        };
        let given: [(&str, Option<usize>); 13] = [
            ("path", s.path.as_ref().map(|v| v.span().start)),
            ("base_url", s.base_url.as_ref().map(|v| v.span().start)),
            ("url", s.url.as_ref().map(|v| v.span().start)),
            (
                "comments_url",
                s.comments_url.as_ref().map(|v| v.span().start),
            ),
            (
                "comment_feeds",
                s.comment_feeds.as_ref().map(|v| v.span().start),
            ),
            (
                "comment_feed_limit",
                s.comment_feed_limit.as_ref().map(|v| v.span().start),
            ),
            ("max_pages", s.max_pages.as_ref().map(|v| v.span().start)),
            (
                "recheck_window",
                s.recheck_window.as_ref().map(|v| v.span().start),
            ),
            (
                "include_protected",
                s.include_protected.as_ref().map(|v| v.span().start),
            ),
            (
                "allow_private",
                s.allow_private.as_ref().map(|v| v.span().start),
            ),
            (
                "follow_hosts",
                s.follow_hosts.as_ref().map(|v| v.span().start),
            ),
            (
                "max_new_items",
                s.max_new_items.as_ref().map(|v| v.span().start),
            ),
            (
                "gather_budget",
                s.gather_budget.as_ref().map(|v| v.span().start),
            ),
        ];
        let limits = self.source_limits(s, key);
        if matches!(kind_name, "folder" | "feed" | "wordpress") {
            for (k, at) in given {
                if let Some(at) = at.filter(|_| !applies.contains(&k)) {
                    self.at(
                        at,
                        format!(
                            "`{key}.{k}` does not apply to a {kind_name} source (its keys: {})",
                            applies.join(", ")
                        ),
                    );
                }
            }
        }
        match kind_name {
            "feed" => {
                let Some(url) = &s.url else {
                    self.at_span(kind, format!("`{key}.url` is required for a feed source: the address of its RSS, Atom or JSON feed"));
                    return None;
                };
                let url = self.url(url, &format!("{key}.url"));
                let comments_url = match &s.comments_url {
                    Some(c) => Some(self.url(c, &format!("{key}.comments_url"))?),
                    None => None,
                };
                let limit = self
                    .count(
                        &s.comment_feed_limit,
                        &format!("{key}.comment_feed_limit"),
                        0,
                    )
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                    .unwrap_or(20);
                Some(SourceConfig::Feed(FeedSourceConfig {
                    name,
                    url: url?,
                    comments_url,
                    comment_feeds: s
                        .comment_feeds
                        .as_ref()
                        .map(|b| *b.get_ref())
                        .unwrap_or(true),
                    comment_feed_limit: limit,
                    limits,
                }))
            }
            "wordpress" => {
                let Some(base) = &s.base_url else {
                    self.at_span(kind, format!("`{key}.base_url` is required for a wordpress source: the site's address"));
                    return None;
                };
                let base = self
                    .url(base, &format!("{key}.base_url"))
                    .map(|u| u.trim_end_matches('/').to_owned());
                let max_pages = self
                    .count(&s.max_pages, &format!("{key}.max_pages"), 1)
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                    .unwrap_or(10);
                let recheck_window = s
                    .recheck_window
                    .as_ref()
                    .map(|v| self.interval(v, &format!("{key}.recheck_window")))
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .unwrap_or_else(|| chrono::Duration::days(14));
                Some(SourceConfig::WordPress(WordPressSourceConfig {
                    name,
                    base_url: base?,
                    max_pages,
                    recheck_window,
                    include_protected: s.include_protected.as_ref().is_some_and(|b| *b.get_ref()),
                    limits,
                }))
            }
            "folder" => {
                let Some(path) = &s.path else {
                    self.at_span(
                        kind,
                        format!("`{key}.path` is required for a folder source: the directory holding essays"),
                    );
                    return None;
                };
                let dir = resolve(path.get_ref());
                if !dir.is_dir() {
                    self.at_span(
                        path,
                        format!("`{key}.path`: folder {} does not exist", dir.display()),
                    );
                }
                let base_url = match &s.base_url {
                    Some(u) => self
                        .url(u, &format!("{key}.base_url"))?
                        .trim_end_matches('/')
                        .to_owned(),
                    None => site_url?.to_owned(),
                };
                Some(SourceConfig::Folder(FolderSourceConfig {
                    name,
                    path: dir,
                    base_url,
                }))
            }
            other => {
                self.at_span(
                    kind,
                    format!("`{key}.type`: unknown source type \"{other}\"; use \"folder\", \"feed\" or \"wordpress\""),
                );
                None
            }
        }
    }
}
