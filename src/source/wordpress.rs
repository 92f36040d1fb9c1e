//! `type = "wordpress"`: essays from `/wp-json/wp/v2/posts` and replies from
//! `/wp-json/wp/v2/comments`, paged through `X-WP-TotalPages`, with author names embedded
//! (`_embed=author`, no request per essay). After the first gather only what changed since
//! the last success is asked for (`modified_after` / `after`, with a day of overlap).
//! If the REST API is disabled (401/403/404) the site's feeds are used instead.
//!
//! Keys match what WordPress puts in its feeds (the post guid, and `guid#comment-ID`), so
//! switching between the API and the feeds never makes an old item new.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::http::{Fetched, HttpError};
use super::identity::normalize_ref;
use super::normalize::{html_line, sanitize_html};
use super::{Essay, FetchRecord, GatherContext, Gathered, Reply, SourceError};
use crate::config::{plain_line, FeedSourceConfig, WordPressSourceConfig};

#[derive(Debug, Deserialize)]
struct Rendered {
    #[serde(default)]
    rendered: String,
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

/// Sources already told about their REST API being off, so the log says it once.
fn warned() -> &'static Mutex<HashSet<String>> {
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    WARNED.get_or_init(|| Mutex::new(HashSet::new()))
}

async fn get_pages<T: for<'de> Deserialize<'de>>(
    ctx: &GatherContext,
    first_url: &str,
    max_pages: u32,
    out: &mut Gathered,
) -> Result<Vec<T>, SourceError> {
    let mut items = Vec::new();
    let mut page = 1;
    loop {
        let url = format!("{first_url}&page={page}");
        let body = match ctx
            .http
            .get(&url, ctx.validators(&url), "application/json")
            .await?
        {
            Fetched::NotModified => {
                out.fetches.push(FetchRecord::not_modified(&url, None));
                // Unchanged page: nothing new on it; later pages may still have changed.
                break;
            }
            Fetched::Body(b) => b,
        };
        let parsed: Vec<T> =
            serde_json::from_slice(&body.bytes).map_err(|e| SourceError::Feed {
                url: url.clone(),
                message: format!("not the JSON the WordPress REST API returns: {e}"),
            })?;
        out.fetches
            .push(FetchRecord::fetched(&url, None, &body.validators));
        items.extend(parsed);
        let total: u32 = body
            .headers
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

fn post_to_essay(source: &str, p: &Post) -> Essay {
    let guid = p
        .guid
        .as_ref()
        .map(|g| g.rendered.clone())
        .filter(|g| !g.trim().is_empty())
        .or_else(|| p.link.clone())
        .unwrap_or_else(|| format!("wordpress-post-{}", p.id));
    let base = p.link.as_deref();
    let title_html = p.title.as_ref().map(|t| t.rendered.as_str()).unwrap_or("");
    Essay {
        source: source.to_owned(),
        key: normalize_ref(&guid),
        title: {
            let t = html_line(title_html);
            if t.is_empty() {
                "Untitled".into()
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
        summary: p
            .excerpt
            .as_ref()
            .map(|e| plain_line(&super::normalize::html_to_text(&e.rendered, 10_000)))
            .filter(|s| !s.is_empty()),
        content_html: sanitize_html(
            p.content
                .as_ref()
                .map(|c| c.rendered.as_str())
                .unwrap_or(""),
            base,
        ),
    }
}

/// Gathers a WordPress site through its REST API, or its feeds when the API is off.
pub async fn gather(
    cfg: &WordPressSourceConfig,
    ctx: &GatherContext,
) -> Result<Gathered, SourceError> {
    let api = format!("{}/wp-json/wp/v2", cfg.base_url);
    let since = ctx.since.map(|s| {
        (s - chrono::Duration::days(1))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    });
    let mut out = Gathered::default();

    let mut posts_url =
        format!("{api}/posts?per_page=100&_embed=author&orderby=modified&order=desc");
    if let Some(s) = &since {
        posts_url.push_str(&format!("&modified_after={s}"));
    }
    let posts: Vec<Post> = match get_pages(ctx, &posts_url, cfg.max_pages, &mut out).await {
        Err(SourceError::Http(e)) if matches!(e.status(), Some(401 | 403 | 404)) => {
            return fall_back_to_feeds(cfg, ctx, &e).await;
        }
        other => other?,
    };
    let mut by_id: HashMap<u64, (String, Option<String>)> = HashMap::new();
    for p in &posts {
        let essay = post_to_essay(&cfg.name, p);
        by_id.insert(p.id, (essay.key.clone(), essay.url.clone()));
        out.essays.push(essay);
    }

    let mut comments_url = format!("{api}/comments?per_page=100&orderby=date_gmt&order=desc");
    if let Some(s) = &since {
        comments_url.push_str(&format!("&after={s}"));
    }
    let comments: Vec<Comment> = get_pages(ctx, &comments_url, cfg.max_pages, &mut out).await?;

    // Place comments on posts this gather did not return: known ones by URL, the rest
    // fetched in one request per hundred and stored as archive (never mailed as news).
    let known: HashMap<String, String> = ctx
        .known_essays
        .iter()
        .filter_map(|(u, k)| Some((normalize_ref(u.as_deref()?), k.clone())))
        .collect();
    let mut missing: Vec<u64> = Vec::new();
    for c in &comments {
        if by_id.contains_key(&c.post) {
            continue;
        }
        let page = c
            .link
            .as_deref()
            .map(|l| normalize_ref(l.split('#').next().unwrap_or(l)));
        match page.and_then(|p| known.get(&p).map(|k| (k.clone(), p))) {
            Some((key, _)) => {
                by_id.insert(c.post, (key, None));
            }
            None if !missing.contains(&c.post) => missing.push(c.post),
            None => {}
        }
    }
    for chunk in missing.chunks(100) {
        let ids: Vec<String> = chunk.iter().map(u64::to_string).collect();
        let url = format!(
            "{api}/posts?per_page=100&_embed=author&include={}",
            ids.join(",")
        );
        if let Fetched::Body(body) = ctx.http.get(&url, None, "application/json").await? {
            let parsed: Vec<Post> =
                serde_json::from_slice(&body.bytes).map_err(|e| SourceError::Feed {
                    url: url.clone(),
                    message: format!("not the JSON the WordPress REST API returns: {e}"),
                })?;
            for p in &parsed {
                let essay = post_to_essay(&cfg.name, p);
                by_id.insert(p.id, (essay.key.clone(), essay.url.clone()));
                out.context_essays.push(essay);
            }
        }
    }

    for c in &comments {
        let Some((essay_key, essay_url)) = by_id.get(&c.post) else {
            tracing::debug!(source = %cfg.name, comment = c.id, post = c.post, "Comment on a post the API did not return; skipped for now.");
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
            content_html: sanitize_html(
                c.content
                    .as_ref()
                    .map(|x| x.rendered.as_str())
                    .unwrap_or(""),
                c.link.as_deref().or(essay_url.as_deref()),
            ),
        });
    }
    Ok(out)
}

async fn fall_back_to_feeds(
    cfg: &WordPressSourceConfig,
    ctx: &GatherContext,
    why: &HttpError,
) -> Result<Gathered, SourceError> {
    let first = warned()
        .lock()
        .map(|mut w| w.insert(cfg.name.clone()))
        .unwrap_or(false);
    if first {
        tracing::warn!(source = %cfg.name, reason = %why, "WordPress REST API unavailable; reading the site's feeds instead.");
    }
    let feed = FeedSourceConfig {
        name: cfg.name.clone(),
        url: format!("{}/feed/", cfg.base_url),
        comments_url: Some(format!("{}/comments/feed/", cfg.base_url)),
        comment_feeds: true,
        comment_feed_limit: 20,
    };
    super::feed::gather(&feed, ctx).await
}
