//! `type = "wordpress"`: essays from the REST API's `wp/v2/posts` and replies from
//! `wp/v2/comments`, as WordPress really runs:
//!
//! - The REST root is discovered (the `Link: <…>; rel="https://api.w.org/"` header of the
//!   home page, or its `<link>`), so plain permalinks (`/?rest_route=/`) work too.
//! - After the first gather, each gather lists ids only (`_fields=id,modified_gmt`) of the
//!   posts modified since the last success and of the posts and comments *dated* within
//!   `recheck_window` (default 14 days), and fetches in full (`include=`) only those it
//!   does not have: a scheduled post that wp-cron publishes days after it was written, or
//!   a comment approved days after it was posted, is gathered when it appears.
//! - Lists are ordered by id, which is unique, so pages never overlap or skip when many
//!   posts share a modification time; date filters carry an explicit `Z`.
//! - Password-protected posts are left out (with their comments) unless
//!   `include_protected`, and then only their title and link are kept.
//! - Authors come from `_embed=author`; where the site removed `/wp/v2/users`, from the
//!   site's Atom feed.
//! - If the REST API is off (401/403/404), the site's Atom feeds are read instead (they
//!   carry `thr:in-reply-to` threads), and `status` says so.
//!
//! Keys match what WordPress puts in its feeds (the post guid, and `guid#comment-ID`), so
//! switching between the API and the feeds never makes an old item new.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::http::{Fetched, HttpError};
use super::identity::normalize_ref;
use super::normalize::{html_line, sanitize_html};
use super::{Essay, Fetcher, GatherContext, Gathered, Reply, SourceError};
use crate::config::{plain_line, FeedSourceConfig, WordPressSourceConfig};

/// The post fields Gazette uses; `_links` and `_embedded` carry the embedded author.
const POST_FIELDS: &str =
    "id,date_gmt,modified_gmt,guid,link,title,excerpt,content,author,_links,_embedded";
/// The comment fields Gazette uses.
const COMMENT_FIELDS: &str = "id,post,parent,author_name,date_gmt,content,link";
/// How far a repeat gather's "modified since" list reaches before the last success, for
/// clocks that disagree; ids already known are not fetched again.
const CLOCK_SLACK_MINUTES: i64 = 60;
const JSON: &str = "application/json";

#[derive(Debug, Deserialize)]
struct Rendered {
    #[serde(default)]
    rendered: String,
    #[serde(default)]
    protected: bool,
}

#[derive(Debug, Deserialize)]
struct Post {
    id: u64,
    #[serde(default)]
    date_gmt: Option<String>,
    #[serde(default)]
    modified_gmt: Option<String>,
    guid: Option<Rendered>,
    #[serde(default)]
    link: Option<String>,
    title: Option<Rendered>,
    excerpt: Option<Rendered>,
    content: Option<Rendered>,
    #[serde(rename = "_embedded", default)]
    embedded: Option<Embedded>,
}

#[derive(Debug, Deserialize)]
struct Embedded {
    #[serde(default)]
    author: Vec<Author>,
}

#[derive(Debug, Deserialize)]
struct Author {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Comment {
    id: u64,
    post: u64,
    #[serde(default)]
    parent: u64,
    #[serde(default)]
    author_name: Option<String>,
    #[serde(default)]
    date_gmt: Option<String>,
    content: Option<Rendered>,
    #[serde(default)]
    link: Option<String>,
}

/// An entry of an ids-only list.
#[derive(Debug, Deserialize)]
struct Listed {
    id: u64,
    #[serde(default)]
    modified_gmt: Option<String>,
    #[serde(default)]
    content: Option<Rendered>,
}

fn gmt(s: &Option<String>) -> Option<DateTime<Utc>> {
    let s = s.as_deref()?;
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
        .or_else(|| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
}

/// A UTC time as a REST date filter: with its zone, since WordPress reads a zone-less
/// value in the site's own time zone.
fn filter_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A REST root: `https://site/wp-json/` or, with plain permalinks, `https://site/?rest_route=/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    root: String,
}

impl Api {
    /// The API at `root`, as discovered.
    pub fn new(root: &str) -> Api {
        Api {
            root: root.to_owned(),
        }
    }

    /// The URL of `route` (e.g. `wp/v2/posts`) with a query string.
    pub fn url(&self, route: &str, query: &str) -> String {
        match self.root.split_once("rest_route=") {
            Some((base, _)) => format!("{base}rest_route=/{route}&{query}"),
            None => format!("{}/{route}?{query}", self.root.trim_end_matches('/')),
        }
    }

    /// Whether the site runs with plain permalinks (`?rest_route=`, `?feed=`).
    fn plain(&self) -> bool {
        self.root.contains("rest_route=")
    }
}

/// The REST root a home page names: its `Link` header, else its `<link>` element.
pub fn api_root_in(link_header: Option<&str>, html: &str) -> Option<String> {
    const REL: &str = "rel=\"https://api.w.org/\"";
    if let Some(h) = link_header {
        for part in h.split(',') {
            if part.contains(REL) {
                let (_, rest) = part.split_once('<')?;
                let (url, _) = rest.split_once('>')?;
                return Some(url.trim().to_owned());
            }
        }
    }
    let at = html.find(REL)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let (_, rest) = tag
        .split_once("href=\"")
        .or_else(|| tag.split_once("href='"))?;
    let end = rest.find(['"', '\''])?;
    Some(rest[..end].replace("&amp;", "&"))
}

/// Why the REST route could not be used.
enum RestError {
    /// Refused, gone or not the API (401/403/404, or not its JSON): try elsewhere.
    Unavailable(String),
    /// Any other failure: the gather fails.
    Failed(SourceError),
}

impl From<SourceError> for RestError {
    fn from(e: SourceError) -> Self {
        match &e {
            SourceError::Http(h) if matches!(h.status(), Some(401 | 403 | 404)) => {
                RestError::Unavailable(h.to_string())
            }
            _ => RestError::Failed(e),
        }
    }
}

impl From<HttpError> for RestError {
    fn from(e: HttpError) -> Self {
        RestError::from(SourceError::Http(e))
    }
}

async fn get_json<T: for<'de> Deserialize<'de>>(
    http: &Fetcher,
    url: &str,
) -> Result<(T, HashMap<String, String>), RestError> {
    match http.get(url, None, JSON).await? {
        Fetched::NotModified => Err(RestError::Failed(SourceError::Feed {
            url: url.to_owned(),
            message: "answered 304 to a request without validators".into(),
        })),
        Fetched::Body(body) => {
            let is_json = body
                .content_type
                .as_deref()
                .is_some_and(|t| t.contains("json"));
            match serde_json::from_slice(&body.bytes) {
                Ok(v) => Ok((v, body.headers)),
                Err(e) if !is_json => Err(RestError::Unavailable(format!(
                    "{url}: not the WordPress REST API ({e})"
                ))),
                Err(e) => Err(RestError::Failed(SourceError::Feed {
                    url: url.to_owned(),
                    message: format!("not the JSON the WordPress REST API returns: {e}"),
                })),
            }
        }
    }
}

/// Reads every page of a list (100 a page, at most `max_pages`).
async fn get_pages<T: for<'de> Deserialize<'de>>(
    http: &Fetcher,
    first_url: &str,
    max_pages: u32,
) -> Result<Vec<T>, RestError> {
    let mut items = Vec::new();
    let mut page = 1;
    loop {
        let url = format!("{first_url}&page={page}");
        let (parsed, headers): (Vec<T>, _) = get_json(http, &url).await?;
        items.extend(parsed);
        let total: u32 = headers
            .get("x-wp-totalpages")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1);
        if page >= total || page >= max_pages {
            if page < total {
                tracing::warn!(url = %first_url, pages = total, read = page, "Stopped paging at `max_pages`.");
            }
            break;
        }
        page += 1;
    }
    Ok(items)
}

/// Fetches the given ids in full, 100 a request.
async fn get_included<T: for<'de> Deserialize<'de>>(
    http: &Fetcher,
    api: &Api,
    route: &str,
    ids: &[u64],
    fields: &str,
) -> Result<Vec<T>, RestError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(100) {
        let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
        let url = api.url(
            route,
            &format!("include={}&per_page=100&{fields}", list.join(",")),
        );
        let (parsed, _): (Vec<T>, _) = get_json(http, &url).await?;
        out.extend(parsed);
    }
    Ok(out)
}

fn post_to_essay(cfg: &WordPressSourceConfig, p: &Post) -> Essay {
    let guid = p
        .guid
        .as_ref()
        .map(|g| g.rendered.replace("&amp;", "&"))
        .filter(|g| !g.trim().is_empty())
        .or_else(|| p.link.clone())
        .unwrap_or_else(|| format!("wordpress-post-{}", p.id));
    let base = p.link.as_deref();
    let title_html = p.title.as_ref().map(|t| t.rendered.as_str()).unwrap_or("");
    let protected = p.content.as_ref().is_some_and(|c| c.protected);
    Essay {
        source: cfg.name.clone(),
        key: normalize_ref(&guid),
        title: {
            let t = html_line(title_html);
            if t.is_empty() {
                super::feed::untitled(p.content.as_ref().map_or("", |c| c.rendered.as_str()))
            } else {
                t
            }
        },
        author: p
            .embedded
            .as_ref()
            .and_then(|e| e.author.first())
            .and_then(|a| a.name.as_deref())
            .map(html_line)
            .filter(|n| !n.is_empty()),
        url: p.link.clone(),
        published_at: gmt(&p.date_gmt),
        updated_at: gmt(&p.modified_gmt),
        // A protected post, where mailed at all, is its title and link: nothing else.
        summary: p
            .excerpt
            .as_ref()
            .filter(|_| !protected)
            .map(|e| plain_line(&super::normalize::html_to_line(&e.rendered)))
            .filter(|s| !s.is_empty()),
        content_html: if protected {
            String::new()
        } else {
            sanitize_html(
                p.content
                    .as_ref()
                    .map(|c| c.rendered.as_str())
                    .unwrap_or(""),
                base,
            )
        },
        origin_id: Some(format!("post:{}", p.id)),
    }
}

/// Posts of one gather: essays by post id, and the protected ones left out.
#[derive(Default)]
struct Seen {
    by_id: HashMap<u64, (String, Option<String>)>,
    hidden: HashSet<u64>,
}

impl Seen {
    fn take(&mut self, cfg: &WordPressSourceConfig, p: &Post, out: &mut Gathered, context: bool) {
        if p.content.as_ref().is_some_and(|c| c.protected) && !cfg.include_protected {
            self.hidden.insert(p.id);
            return;
        }
        let essay = super::cpu(|| post_to_essay(cfg, p));
        self.by_id
            .insert(p.id, (essay.key.clone(), essay.url.clone()));
        if context {
            out.context_essays.push(essay);
        } else {
            out.essays.push(essay);
        }
    }
}

/// The home page: where the REST root and the permalink style are read.
async fn discover(cfg: &WordPressSourceConfig, http: &Fetcher) -> Result<Option<Api>, SourceError> {
    let home = format!("{}/", cfg.base_url);
    let fetched = match http.get(&home, None, "text/html").await {
        // A home page that answers with an error names no API; the feeds may still work.
        Err(HttpError::Status { .. }) => return Ok(None),
        other => other?,
    };
    match fetched {
        Fetched::NotModified => Ok(None),
        Fetched::Body(b) => {
            let html = String::from_utf8_lossy(&b.bytes);
            Ok(api_root_in(b.headers.get("link").map(String::as_str), &html).map(|r| Api::new(&r)))
        }
    }
}

/// Gathers a WordPress site through its REST API, or its feeds when the API is off.
pub async fn gather(
    cfg: &WordPressSourceConfig,
    ctx: &GatherContext,
) -> Result<Gathered, SourceError> {
    let remembered = ctx.api_root.as_deref().map(Api::new);
    let mut rediscovered = remembered.is_none();
    let mut api = match remembered {
        Some(a) => a,
        // Some hardening snippets drop the discovery header but keep the API: try the
        // usual root before giving up on it.
        None => discover(cfg, &ctx.http)
            .await?
            .unwrap_or_else(|| Api::new(&format!("{}/wp-json/", cfg.base_url))),
    };
    loop {
        match gather_rest(cfg, ctx, &api).await {
            Ok(mut out) => {
                out.api_root = Some(api.root.clone());
                return Ok(out);
            }
            Err(RestError::Failed(e)) => return Err(e),
            Err(RestError::Unavailable(why)) if !rediscovered => {
                // Permalinks may have changed since the root was found: look again once.
                rediscovered = true;
                match discover(cfg, &ctx.http).await? {
                    Some(found) if found != api => api = found,
                    _ => return fall_back_to_feeds(cfg, ctx, &why, Some(&api)).await,
                }
            }
            Err(RestError::Unavailable(why)) => {
                return fall_back_to_feeds(cfg, ctx, &why, Some(&api)).await
            }
        }
    }
}

async fn gather_rest(
    cfg: &WordPressSourceConfig,
    ctx: &GatherContext,
    api: &Api,
) -> Result<Gathered, RestError> {
    let http = &ctx.http;
    let mut out = Gathered::default();
    let post_query = format!("_embed=author&_fields={POST_FIELDS}");
    let comment_query = format!("_fields={COMMENT_FIELDS}");
    let known = |origin: &str| ctx.origins.get(origin);

    let (posts, comments): (Vec<Post>, Vec<Comment>) = match ctx.since {
        None => {
            // First gather: the newest pages in full; they are the archive.
            let posts = get_pages(
                http,
                &api.url(
                    "wp/v2/posts",
                    &format!("per_page=100&orderby=id&order=desc&{post_query}"),
                ),
                cfg.max_pages,
            )
            .await?;
            let comments = get_pages(
                http,
                &api.url(
                    "wp/v2/comments",
                    &format!("per_page=100&orderby=id&order=desc&{comment_query}"),
                ),
                cfg.max_pages,
            )
            .await?;
            (posts, comments)
        }
        Some(since) => {
            let modified_after =
                filter_time(since - chrono::Duration::minutes(CLOCK_SLACK_MINUTES));
            let dated_after = filter_time((ctx.now - cfg.recheck_window).min(since));
            let list = |filter: String| {
                api.url(
                    "wp/v2/posts",
                    &format!("_fields=id,modified_gmt&per_page=100&orderby=id&order=asc&{filter}"),
                )
            };
            let mut listed: Vec<Listed> = get_pages(
                http,
                &list(format!("modified_after={modified_after}")),
                cfg.max_pages,
            )
            .await?;
            listed.extend(
                get_pages::<Listed>(http, &list(format!("after={dated_after}")), cfg.max_pages)
                    .await?,
            );
            let mut wanted: Vec<u64> = listed
                .iter()
                .filter(|l| match known(&format!("post:{}", l.id)) {
                    None => true,
                    Some((_, updated)) => *updated != gmt(&l.modified_gmt),
                })
                .map(|l| l.id)
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            let posts = get_included(http, api, "wp/v2/posts", &wanted, &post_query).await?;

            let listed: Vec<Listed> = get_pages(
                http,
                &api.url(
                    "wp/v2/comments",
                    &format!("_fields=id&per_page=100&orderby=id&order=asc&after={dated_after}"),
                ),
                cfg.max_pages,
            )
            .await?;
            let wanted: Vec<u64> = listed
                .iter()
                .map(|l| l.id)
                .filter(|id| known(&format!("comment:{id}")).is_none())
                .collect();
            let comments =
                get_included(http, api, "wp/v2/comments", &wanted, &comment_query).await?;
            (posts, comments)
        }
    };

    let mut seen = Seen::default();
    for p in &posts {
        seen.take(cfg, p, &mut out, false);
    }
    let mut missing: Vec<u64> = Vec::new();
    for c in &comments {
        if seen.by_id.contains_key(&c.post) || seen.hidden.contains(&c.post) {
            continue;
        }
        if let Some((key, _)) = known(&format!("post:{}", c.post)) {
            seen.by_id.insert(c.post, (key.clone(), None));
        } else if !missing.contains(&c.post) {
            missing.push(c.post);
        }
    }
    // Comments on posts neither gathered now nor stored: those posts are fetched once and
    // stored as archive (never mailed as new essays).
    let context: Vec<Post> = get_included(http, api, "wp/v2/posts", &missing, &post_query).await?;
    for p in &context {
        seen.take(cfg, p, &mut out, true);
    }
    let Seen { by_id, hidden } = seen;

    for c in &comments {
        let Some((essay_key, essay_url)) = by_id.get(&c.post) else {
            if !hidden.contains(&c.post) {
                tracing::debug!(source = %cfg.name, comment = c.id, post = c.post, "Comment on a post the API did not return; skipped for now.");
            }
            continue;
        };
        let key = |id: u64| format!("{essay_key}#comment-{id}");
        out.replies.push(Reply {
            source: cfg.name.clone(),
            key: key(c.id),
            essay_key: essay_key.clone(),
            parent_key: (c.parent != 0).then(|| key(c.parent)),
            author: c
                .author_name
                .as_deref()
                .map(html_line)
                .filter(|n| !n.is_empty()),
            url: c.link.clone(),
            published_at: gmt(&c.date_gmt),
            content_html: super::cpu(|| {
                sanitize_html(
                    c.content
                        .as_ref()
                        .map(|x| x.rendered.as_str())
                        .unwrap_or(""),
                    c.link.as_deref().or(essay_url.as_deref()),
                )
            }),
            origin_id: Some(format!("comment:{}", c.id)),
        });
    }

    if out
        .essays
        .iter()
        .chain(&out.context_essays)
        .any(|e| e.author.is_none())
    {
        authors_from_feed(cfg, ctx, api, &mut out).await;
    }
    Ok(out)
}

/// The site's Atom feeds: posts, and the site-wide comments.
fn feed_urls(cfg: &WordPressSourceConfig, api: Option<&Api>) -> (String, String) {
    let base = &cfg.base_url;
    if api.is_some_and(Api::plain) {
        (
            format!("{base}/?feed=atom"),
            format!("{base}/?feed=comments-atom"),
        )
    } else {
        (
            format!("{base}/feed/atom/"),
            format!("{base}/comments/feed/atom/"),
        )
    }
}

/// Where `/wp/v2/users` is removed (an anti-enumeration snippet many sites run), the
/// embedded author is an error: the names are read from the site's feed instead, which
/// names every post's author without enumerating users. Only posts in the feed's newest
/// page get one; the others keep none.
async fn authors_from_feed(
    cfg: &WordPressSourceConfig,
    ctx: &GatherContext,
    api: &Api,
    out: &mut Gathered,
) {
    let (url, _) = feed_urls(cfg, Some(api));
    let items = match ctx.http.get(&url, None, super::feed::ACCEPT).await {
        Ok(Fetched::Body(b)) => super::feed::parse(&b.bytes, &b.final_url).unwrap_or_default(),
        Ok(Fetched::NotModified) => Vec::new(),
        Err(e) => {
            tracing::info!(source = %cfg.name, error = %e, "No author names: the users route is off and the feed could not be read.");
            Vec::new()
        }
    };
    let names: HashMap<&str, &str> = items
        .iter()
        .filter_map(|i| Some((i.key.as_str(), i.author.as_deref()?)))
        .collect();
    for e in out.essays.iter_mut().chain(out.context_essays.iter_mut()) {
        if e.author.is_none() {
            e.author = names.get(e.key.as_str()).map(|n| (*n).to_owned());
        }
    }
}

async fn fall_back_to_feeds(
    cfg: &WordPressSourceConfig,
    ctx: &GatherContext,
    why: &str,
    api: Option<&Api>,
) -> Result<Gathered, SourceError> {
    // The pipeline logs the fallback route of every such gather, and `status` shows it.
    let (url, comments_url) = feed_urls(cfg, api);
    let feed = FeedSourceConfig {
        name: cfg.name.clone(),
        url,
        comments_url: Some(comments_url),
        comment_feeds: true,
        comment_feed_limit: 20,
        limits: cfg.limits.clone(),
    };
    let mut out = super::feed::gather(&feed, ctx).await?;
    for e in &mut out.essays {
        // Editor-made posts have `?p=ID` guids: the same origin id as through the API.
        e.origin_id = e
            .key
            .rsplit_once("?p=")
            .and_then(|(_, id)| id.parse::<u64>().ok())
            .map(|id| format!("post:{id}"));
    }
    for r in &mut out.replies {
        r.origin_id = r
            .key
            .rsplit_once("#comment-")
            .and_then(|(_, id)| id.parse::<u64>().ok())
            .map(|id| format!("comment:{id}"));
        // WordPress's feeds say "Anonymous" where the REST API gives no name.
        if r.author.as_deref() == Some("Anonymous") {
            r.author = None;
        }
    }
    out.route = Some(format!("feeds, because the REST API is unavailable: {why}"));
    out.api_root = api.map(|a| a.root.clone());
    Ok(out)
}

/// Which of an edition's items the site no longer publishes: the ids missing from an
/// `include=` list (unpublished, trashed, spam, unapproved), and protected posts unless
/// the source mails them.
pub async fn retracted(
    cfg: &WordPressSourceConfig,
    http: &Fetcher,
    api_root: &str,
    posts: &[u64],
    comments: &[u64],
) -> Result<(HashSet<u64>, HashSet<u64>), SourceError> {
    let api = Api::new(api_root);
    let fail = |e: RestError| match e {
        RestError::Failed(e) => e,
        RestError::Unavailable(why) => SourceError::Feed {
            url: api_root.to_owned(),
            message: why,
        },
    };
    let live: Vec<Listed> = get_included(
        http,
        &api,
        "wp/v2/posts",
        posts,
        "_fields=id,content.protected",
    )
    .await
    .map_err(fail)?;
    let live_posts: HashSet<u64> = live
        .iter()
        .filter(|l| cfg.include_protected || !l.content.as_ref().is_some_and(|c| c.protected))
        .map(|l| l.id)
        .collect();
    let live: Vec<Listed> = get_included(http, &api, "wp/v2/comments", comments, "_fields=id")
        .await
        .map_err(fail)?;
    let live_comments: HashSet<u64> = live.iter().map(|l| l.id).collect();
    Ok((
        posts
            .iter()
            .copied()
            .filter(|p| !live_posts.contains(p))
            .collect(),
        comments
            .iter()
            .copied()
            .filter(|c| !live_comments.contains(c))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_under_pretty_and_plain_roots() {
        assert_eq!(
            Api::new("https://m.org/wp-json/").url("wp/v2/posts", "per_page=100"),
            "https://m.org/wp-json/wp/v2/posts?per_page=100"
        );
        assert_eq!(
            Api::new("https://m.org/?rest_route=/").url("wp/v2/posts", "per_page=100"),
            "https://m.org/?rest_route=/wp/v2/posts&per_page=100"
        );
    }

    #[test]
    fn the_rest_root_is_read_from_the_link_header_or_the_page() {
        assert_eq!(
            api_root_in(
                Some("<https://m.org/?rest_route=/>; rel=\"https://api.w.org/\", <https://m.org/?p=5>; rel=shortlink"),
                ""
            )
            .as_deref(),
            Some("https://m.org/?rest_route=/")
        );
        assert_eq!(
            api_root_in(
                None,
                "<head><link rel=\"https://api.w.org/\" href=\"https://m.org/wp-json/\" /></head>"
            )
            .as_deref(),
            Some("https://m.org/wp-json/")
        );
        assert_eq!(api_root_in(None, "<html></html>"), None);
    }

    #[test]
    fn date_filters_carry_their_zone() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T08:30:00+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(filter_time(t), "2026-12-01T07:30:00Z");
    }
}
