//! `type = "feed"`: RSS 0.9x/1.0/2.0, Atom and JSON Feed through feed-rs, plus the
//! comment feeds publications attach to them: per-essay feeds found in `wfw:commentRss`
//! (RSS) or `<link rel="replies">` (Atom threading, RFC 4685), and an optional site-wide
//! comments feed whose items link to `essay-url#comment-ID` or carry `thr:in-reply-to`.
//!
//! feed-rs does not expose those threading extensions, so a small quick-xml pass reads
//! them beside it; parsing is a plain function, fetching is the only async part.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use quick_xml::events::Event;

use super::http::{Fetched, Validators};
use super::identity::{fallback_key, normalize_ref};
use super::normalize::{html_line, html_to_line, sanitize_html};
use super::{dates, sniff};
use super::{Essay, FetchRecord, GatherContext, Gathered, Reply, SourceError, Unplaced};
use crate::config::{plain_line, FeedSourceConfig};

/// Items read from one feed document; the rest are ignored (real feeds carry 10–100,
/// and each item is cleaned before the per-gather cap can apply).
pub const MAX_ITEMS_PER_FEED: usize = 1000;

/// Comment feeds in flight at once for one source (each host still gets `http.per_host`).
const COMMENT_FEEDS_AT_ONCE: usize = 8;

/// What a feed request accepts.
pub const ACCEPT: &str = "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1";

/// One feed item, identity decided, content sanitised, threading read.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Stable key: guid/id → link → hash.
    pub key: String,
    /// Plain-text title.
    pub title: String,
    /// Plain-text author.
    pub author: Option<String>,
    /// The item's web page.
    pub url: Option<String>,
    /// Published (or, failing that, updated) time.
    pub published_at: Option<DateTime<Utc>>,
    /// Updated time.
    pub updated_at: Option<DateTime<Utc>>,
    /// Plain-text summary when the feed gave one beside full content.
    pub summary: Option<String>,
    /// Sanitised HTML.
    pub content_html: String,
    /// The item's own comment feed (wfw:commentRss or link rel=replies).
    pub comment_feed: Option<String>,
    /// Normalised `thr:in-reply-to` ref (the id of what it answers).
    pub in_reply_to: Option<String>,
    /// `thr:in-reply-to` href (the page of what it answers).
    pub in_reply_to_href: Option<String>,
    /// The comment it answers, from WordPress's "In reply to" first line.
    pub reply_to_comment: Option<u64>,
    /// WordPress put its password form here instead of the content.
    pub protected: bool,
}

/// Threading extensions of one item, read by the quick-xml pass.
#[derive(Debug, Default, Clone)]
struct Ext {
    id: Option<String>,
    link: Option<String>,
    comment_feed: Option<String>,
    in_reply_to: Option<String>,
    in_reply_to_href: Option<String>,
    /// Publication dates as written (pubDate, published, dc:date, issued, created).
    published: Vec<String>,
    /// Update dates as written (updated, modified).
    updated: Vec<String>,
}

/// Parses a feed document into items. `base_url` resolves relative links.
pub fn parse(bytes: &[u8], base_url: &str) -> Result<Vec<Item>, String> {
    parse_typed(bytes, base_url, None)
}

/// Parses a feed document served with this Content-Type (for its charset): the
/// encoding is sniffed, JSON goes to the JSON Feed reader, XML to feed-rs, and anything
/// else is refused with what it seems to be.
pub fn parse_typed(
    bytes: &[u8],
    base_url: &str,
    content_type: Option<&str>,
) -> Result<Vec<Item>, String> {
    let text = sniff::decode(bytes, sniff::charset_of(content_type));
    match sniff::kind(&text) {
        sniff::Kind::Json => super::jsonfeed::parse(&text, base_url),
        sniff::Kind::Other(what) => Err(what),
        sniff::Kind::Xml => parse_xml(&sniff::with_rss_version(text), base_url),
    }
}

fn parse_xml(text: &str, base_url: &str) -> Result<Vec<Item>, String> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(base_url))
        // Never a random id: items without one get "" here and a stable key below.
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser
        .parse(text.as_bytes())
        .map_err(|e| match sniff::root_element(text) {
            Some(root) if !matches!(root.rsplit(':').next(), Some("rss" | "feed" | "RDF")) => {
                format!("an XML document whose root element is <{root}>, not an RSS or Atom feed")
            }
            _ => format!("not a valid RSS or Atom feed: {e}"),
        })?;
    let bytes = text.as_bytes();
    let exts = scan_extensions(bytes);
    // Atom: an entry without an author has its feed's (RFC 4287 §4.2.1).
    let feed_author = (feed.feed_type == feed_rs::model::FeedType::Atom)
        .then(|| feed.authors.iter().find_map(|p| p.name.clone()))
        .flatten();
    // Indexed, not searched per entry: a feed of 100,000 items must not cost 10¹⁰ steps.
    let mut by_id: HashMap<&str, &Ext> = HashMap::new();
    let mut by_link: HashMap<&str, &Ext> = HashMap::new();
    for x in &exts {
        if let Some(id) = x.id.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
            by_id.entry(id).or_insert(x);
        }
        if let Some(link) = x.link.as_deref() {
            by_link.entry(link).or_insert(x);
        }
    }
    let find_ext = |id: &str, link: Option<&str>| -> Option<&Ext> {
        Some(id.trim())
            .filter(|i| !i.is_empty())
            .and_then(|i| by_id.get(i))
            .or_else(|| link.and_then(|l| by_link.get(l)))
            .copied()
    };
    if feed.entries.len() > MAX_ITEMS_PER_FEED {
        tracing::warn!(
            url = base_url,
            items = feed.entries.len(),
            kept = MAX_ITEMS_PER_FEED,
            "A feed with more items than any real one; only the first are read."
        );
    }
    let mut items = Vec::with_capacity(feed.entries.len().min(MAX_ITEMS_PER_FEED));
    for entry in feed.entries.into_iter().take(MAX_ITEMS_PER_FEED) {
        let link = entry
            .links
            .iter()
            .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
            .map(|l| l.href.clone());
        let ext = find_ext(&entry.id, link.as_deref())
            .cloned()
            .unwrap_or_default();
        let title = entry
            .title
            .as_ref()
            // Feed titles are HTML in practice, whatever they declare.
            .map(|t| html_line(&t.content))
            .unwrap_or_default();
        // Dates as written, read leniently, the first readable one winning; feed-rs's
        // own reading only where none is.
        let updated = dates::best(ext.updated.iter().map(String::as_str)).or(entry.updated);
        let published = dates::best(ext.published.iter().map(String::as_str))
            .or(entry.published)
            .or(updated);
        let key = if !entry.id.trim().is_empty() {
            normalize_ref(&entry.id)
        } else if let Some(l) = &link {
            normalize_ref(l)
        } else {
            fallback_key(&[
                &title,
                &published.map(|p| p.to_rfc3339()).unwrap_or_default(),
            ])
        };
        let item_base = link.clone().unwrap_or_else(|| base_url.to_owned());
        let body_html = entry
            .content
            .as_ref()
            .and_then(|c| c.body.clone())
            .or_else(|| {
                entry
                    .summary
                    .as_ref()
                    .map(|s| text_to_html(&s.content, s.content_type.as_ref()))
            })
            .unwrap_or_default();
        let protected = is_password_form(&body_html);
        let (reply_to_comment, body_html) = match wordpress_reply_prefix(&body_html) {
            Some((id, rest)) => (Some(id), rest),
            None => (None, body_html),
        };
        let summary = entry
            .content
            .as_ref()
            .and(entry.summary.as_ref())
            .map(|s| plain_line(&text_of(&s.content, s.content_type.as_ref())))
            .filter(|s| !s.is_empty());
        let author = entry
            .authors
            .iter()
            .find_map(|p| p.name.clone())
            .or_else(|| feed_author.clone())
            .map(|n| html_line(&n))
            .filter(|n| !n.is_empty());
        let comment_feed = ext.comment_feed.clone().or_else(|| {
            entry
                .links
                .iter()
                .find(|l| l.rel.as_deref() == Some("replies"))
                .map(|l| l.href.clone())
        });
        items.push(Item {
            key,
            title: if title.is_empty() {
                untitled(&body_html)
            } else {
                title
            },
            author,
            url: link,
            published_at: published,
            updated_at: updated,
            summary,
            content_html: sanitize_html(&body_html, Some(&item_base)),
            comment_feed: comment_feed.and_then(|u| absolute(&u, base_url)),
            in_reply_to: ext.in_reply_to.as_deref().map(normalize_ref),
            in_reply_to_href: ext.in_reply_to_href.clone(),
            reply_to_comment,
            protected,
        });
    }
    Ok(items)
}

/// WordPress shows its password form (class `post-password-form`) in a feed instead of a
/// password-protected post's content, and instead of the comments under it.
fn is_password_form(html: &str) -> bool {
    html.contains("post-password-form") || html.contains("action=postpass")
}

/// WordPress (5.4 and later) starts a child comment's text in its comment feeds with
/// `<p>In reply to <a href="…#comment-N">Name</a>.</p>`, the only place RSS shows the
/// thread. Returns N and the text without that line. English sites only: the sentence is
/// translated with the site's language.
pub fn wordpress_reply_prefix(html: &str) -> Option<(u64, String)> {
    let t = html.trim_start();
    let t = t.strip_prefix("<p>").unwrap_or(t).trim_start();
    let rest = t.strip_prefix("In reply to <a href=\"")?;
    let (href, rest) = rest.split_once('"')?;
    let id: u64 = href.rsplit_once("#comment-")?.1.parse().ok()?;
    let (_, rest) = rest.split_once("</a>.")?;
    let rest = rest.trim_start();
    let rest = rest
        .strip_prefix("</p>")
        .or_else(|| rest.strip_prefix("<br />"))
        .unwrap_or(rest);
    Some((id, rest.trim_start().to_owned()))
}

/// A title for a post that has none, as feed readers make one: its opening words.
pub fn untitled(body_html: &str) -> String {
    let words = super::normalize::excerpt(body_html, 10);
    if words.is_empty() {
        "Untitled".into()
    } else {
        words
    }
}

/// `url` resolved against `base`, if it is http(s).
pub(super) fn absolute(url: &str, base: &str) -> Option<String> {
    let base = url::Url::parse(base).ok();
    let u = url::Url::options()
        .base_url(base.as_ref())
        .parse(url)
        .ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.to_string())
}

/// Text from a feed text construct: HTML is converted, plain text kept; one line.
fn text_of(content: &str, media_type: &str) -> String {
    if media_type.contains("html") {
        plain_line(&html_to_line(content))
    } else {
        plain_line(content)
    }
}

fn text_to_html(content: &str, media_type: &str) -> String {
    if media_type.contains("html") {
        content.to_owned()
    } else {
        content
            .split("\n\n")
            .map(|p| format!("<p>{}</p>", ammonia::clean_text(p.trim())))
            .collect()
    }
}

/// Reads the threading extensions feed-rs leaves out, item by item.
fn scan_extensions(bytes: &[u8]) -> Vec<Ext> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut current: Option<Ext> = None;
    // Depth below the current item, and the direct child whose text we are reading.
    let mut depth = 0usize;
    let mut reading: Option<String> = None;
    let mut text = String::new();
    // A read error ends the pass: feed-rs reports malformed documents.
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Eof => break,
            Event::Start(e) if current.is_none() => {
                let local = e.local_name();
                if local.as_ref() == "item" || local.as_ref() == "entry" {
                    current = Some(Ext::default());
                    depth = 0;
                }
            }
            Event::Start(e) => {
                depth += 1;
                let local = e.local_name().as_ref().to_owned();
                if depth == 1 {
                    if let Some(x) = current.as_mut() {
                        read_attrs(&local, &e, x);
                    }
                    if matches!(
                        local.as_str(),
                        "guid"
                            | "id"
                            | "link"
                            | "commentRss"
                            | "pubDate"
                            | "published"
                            | "date"
                            | "issued"
                            | "created"
                            | "updated"
                            | "modified"
                    ) {
                        reading = Some(local);
                        text.clear();
                    }
                }
            }
            Event::Empty(e) if depth == 0 => {
                let local = e.local_name().as_ref().to_owned();
                if let Some(x) = current.as_mut() {
                    read_attrs(&local, &e, x);
                }
            }
            Event::Text(t) if reading.is_some() => text.push_str(&t.xml10_content()),
            Event::CData(t) if reading.is_some() => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if reading.is_some() => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else {
                    match r.xml10_content().as_ref() {
                        "amp" => text.push('&'),
                        "lt" => text.push('<'),
                        "gt" => text.push('>'),
                        "quot" => text.push('"'),
                        "apos" => text.push('\''),
                        _ => {}
                    }
                }
            }
            Event::End(e) => {
                if depth == 0 {
                    let local = e.local_name();
                    if local.as_ref() == "item" || local.as_ref() == "entry" {
                        if let Some(x) = current.take() {
                            out.push(x);
                        }
                    }
                } else {
                    if depth == 1 {
                        if let (Some(field), Some(x)) = (reading.take(), current.as_mut()) {
                            let value = text.trim().to_owned();
                            if !value.is_empty() {
                                match field.as_str() {
                                    "guid" | "id" => x.id = Some(value),
                                    "link" => x.link = x.link.take().or(Some(value)),
                                    "commentRss" => x.comment_feed = Some(value),
                                    "updated" | "modified" => x.updated.push(value),
                                    _ => x.published.push(value),
                                }
                            }
                        }
                    }
                    depth -= 1;
                }
            }
            _ => {}
        }
        buf.clear();
    }
    out
}

fn read_attrs(local: &str, e: &quick_xml::events::BytesStart<'_>, x: &mut Ext) {
    let attr = |name: &str| -> Option<String> {
        e.attributes()
            .flatten()
            .find(|a| a.key.local_name().as_ref() == name)
            .and_then(|a| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
    };
    match local {
        "link" => {
            let rel = attr("rel");
            if let Some(href) = attr("href") {
                match rel.as_deref() {
                    Some("replies") => {
                        let atom =
                            attr("type").is_none_or(|t| t.contains("atom") || t.contains("rss"));
                        if atom && x.comment_feed.is_none() {
                            x.comment_feed = Some(href);
                        }
                    }
                    None | Some("alternate") => {
                        x.link.get_or_insert(href);
                    }
                    _ => {}
                }
            }
        }
        "in-reply-to" => {
            x.in_reply_to = attr("ref");
            x.in_reply_to_href = attr("href");
        }
        _ => {}
    }
}

/// The page a comment link is on, as the essay's own address: the fragment dropped and
/// WordPress's `comment-page-N/` segment (comment paging) removed.
fn essay_page(url: &str) -> String {
    let page = url.split('#').next().unwrap_or(url);
    let trimmed = page.trim_end_matches('/');
    let page = match trimmed.rsplit_once('/') {
        Some((head, last))
            if last
                .strip_prefix("comment-page-")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())) =>
        {
            head
        }
        _ => page,
    };
    normalize_ref(page)
}

/// Which essay a comment item answers, and which reply, if it says. The item's own
/// link and id win over a `thr:in-reply-to` that names another essay: old WordPress
/// wrote the latest post's id into every entry of its site-wide comment feed.
fn place_reply(
    item: &Item,
    fixed_essay: Option<&str>,
    essays_by_url: &HashMap<String, String>,
    essay_keys: &std::collections::HashSet<String>,
    reply_essay: &HashMap<String, String>,
) -> Option<(String, Option<String>)> {
    let by_url = |u: &str| essays_by_url.get(&essay_page(u)).cloned();
    // A WordPress comment id is its post's guid plus "#comment-N".
    let by_own_id = || {
        item.key
            .rsplit_once("#comment-")
            .map(|(essay, _)| essay.to_owned())
            .filter(|e| essay_keys.contains(e))
    };
    let parent = item
        .in_reply_to
        .as_ref()
        .filter(|r| !essay_keys.contains(*r))
        .cloned();
    let essay = fixed_essay
        .map(str::to_owned)
        .or_else(by_own_id)
        .or_else(|| item.url.as_deref().and_then(by_url))
        .or_else(|| item.in_reply_to.clone().filter(|r| essay_keys.contains(r)))
        .or_else(|| parent.as_ref().and_then(|p| reply_essay.get(p).cloned()))
        .or_else(|| item.in_reply_to_href.as_deref().and_then(by_url))?;
    // WordPress's comment guids are the post's guid plus "#comment-N", so the parent
    // named by an "In reply to" line has this key.
    let parent = parent.or_else(|| {
        item.reply_to_comment
            .map(|n| format!("{essay}#comment-{n}"))
    });
    Some((essay, parent))
}

/// Fetches and parses one feed; `None` when it answered 304.
async fn fetch_feed(
    ctx: &GatherContext,
    url: &str,
) -> Result<Option<(Vec<Item>, Validators)>, SourceError> {
    match ctx.http.get(url, ctx.validators(url), ACCEPT).await? {
        Fetched::NotModified => Ok(None),
        Fetched::Body(body) => {
            // Parsing and sanitising are CPU work: off the async workers, so timers and
            // the web endpoint keep answering while a large feed is cleaned.
            let validators = body.validators;
            let (bytes, final_url, content_type) = (body.bytes, body.final_url, body.content_type);
            let parsed = tokio::task::spawn_blocking(move || {
                parse_typed(&bytes, &final_url, content_type.as_deref())
            })
            .await
            .unwrap_or_else(|e| Err(format!("parsing stopped unexpectedly: {e}")));
            let items = parsed.map_err(|message| SourceError::Feed {
                url: url.to_owned(),
                message,
            })?;
            Ok(Some((items, validators)))
        }
    }
}

/// Gathers a feed source: the essays, each recent essay's comment feed, and the
/// site-wide comments feed.
pub async fn gather(cfg: &FeedSourceConfig, ctx: &GatherContext) -> Result<Gathered, SourceError> {
    let mut out = Gathered::default();

    let mut essay_items = Vec::new();
    match fetch_feed(ctx, &cfg.url).await? {
        Some((items, validators)) => {
            essay_items = items;
            out.fetches
                .push(FetchRecord::fetched(&cfg.url, None, &validators));
        }
        None => out.fetches.push(FetchRecord::not_modified(&cfg.url, None)),
    }
    // A password-protected post has nothing to show but WordPress's form.
    essay_items.retain(|i| !i.protected);
    for item in &essay_items {
        out.essays.push(Essay {
            source: cfg.name.clone(),
            key: item.key.clone(),
            title: item.title.clone(),
            author: item.author.clone(),
            url: item.url.clone(),
            published_at: item.published_at,
            updated_at: item.updated_at,
            summary: item.summary.clone(),
            content_html: item.content_html.clone(),
            origin_id: None,
        });
    }

    // Essays we know, from this gather and earlier ones, to place comments under.
    let mut essays_by_url: HashMap<String, String> = ctx
        .known_essays
        .iter()
        .filter_map(|(url, key)| Some((normalize_ref(url.as_deref()?), key.clone())))
        .collect();
    for e in &out.essays {
        if let Some(u) = &e.url {
            essays_by_url.insert(normalize_ref(u), e.key.clone());
        }
    }
    let mut essay_keys: std::collections::HashSet<String> =
        ctx.known_essays.iter().map(|(_, k)| k.clone()).collect();
    essay_keys.extend(out.essays.iter().map(|e| e.key.clone()));

    // Per-essay comment feeds: those just seen, then those remembered from earlier
    // gathers (a 304 on the main feed must not stop replies from arriving).
    let mut comment_feeds: Vec<(String, String)> = Vec::new();
    if cfg.comment_feeds {
        let mut recent: Vec<&Item> = essay_items
            .iter()
            .filter(|i| i.comment_feed.is_some())
            .collect();
        recent.sort_by_key(|i| std::cmp::Reverse(i.published_at));
        for item in recent {
            if let Some(url) = &item.comment_feed {
                comment_feeds.push((item.key.clone(), url.clone()));
            }
        }
        for (url, essay) in &ctx.comment_feeds {
            if !comment_feeds.iter().any(|(_, u)| u == url) {
                comment_feeds.push((essay.clone(), url.clone()));
            }
        }
        comment_feeds.truncate(cfg.comment_feed_limit);
    }
    let mut reply_essay: HashMap<String, String> = HashMap::new();
    let mut place = |items: Vec<Item>, fixed: Option<&str>, out: &mut Gathered| {
        // Two passes so a reply can name a parent that appears later in the feed.
        let mut placed = Vec::new();
        for item in items.iter().filter(|i| !i.protected) {
            if let Some(place) = place_reply(item, fixed, &essays_by_url, &essay_keys, &reply_essay)
            {
                reply_essay.insert(item.key.clone(), place.0.clone());
                placed.push((item, place));
            } else {
                out.unplaced.push(Unplaced::from(item));
            }
        }
        for (item, (essay, parent)) in placed {
            out.replies.push(Reply {
                source: cfg.name.clone(),
                key: item.key.clone(),
                essay_key: essay,
                parent_key: parent,
                author: item.author.clone(),
                url: item.url.clone(),
                published_at: item.published_at,
                content_html: item.content_html.clone(),
                origin_id: None,
            });
        }
    };
    // Comment feeds are named by the feed, so by whoever wrote it: each must be on the
    // source's own site (the public-address check follows at connect time). A refusal is
    // the operator's to see, once per gather.
    comment_feeds.retain(|(_, url)| match ctx.http.in_scope(url) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(source = %cfg.name, error = %e, "Comment feed not fetched.");
            false
        }
    });
    // Fetched together (the client keeps to `http.per_host` per host), in order.
    let fetches: Vec<_> = comment_feeds
        .iter()
        .cloned()
        .map(|(essay, url)| async move {
            let result = fetch_feed(ctx, &url).await;
            (essay, url, result)
        })
        .collect();
    let fetched: Vec<_> = futures_util::stream::iter(fetches)
        .buffered(COMMENT_FEEDS_AT_ONCE)
        .collect()
        .await;
    for (essay, url, result) in fetched {
        let (essay, url) = (essay.as_str(), url.as_str());
        // A discovered comment feed that fails (a deleted post's 404, a flaky host) must
        // not block the essays: its replies come with a later gather.
        match result {
            Ok(Some((items, validators))) => {
                place(items, Some(essay), &mut out);
                out.fetches
                    .push(FetchRecord::fetched(url, Some(essay), &validators));
            }
            Ok(None) => out
                .fetches
                .push(FetchRecord::not_modified(url, Some(essay))),
            Err(e) => {
                tracing::warn!(source = %cfg.name, error = %e, "Comment feed failed; its replies will come with a later gather.")
            }
        }
    }
    if let Some(url) = &cfg.comments_url {
        match fetch_feed(ctx, url).await? {
            Some((items, validators)) => {
                place(items, None, &mut out);
                out.fetches
                    .push(FetchRecord::fetched(url, None, &validators));
            }
            None => out.fetches.push(FetchRecord::not_modified(url, None)),
        }
    }
    // Replies kept from earlier gathers: their essay may be known now.
    place(
        ctx.unplaced.iter().cloned().map(Item::from).collect(),
        None,
        &mut out,
    );
    // A reply seen in both an essay's feed and the site-wide feed is one reply.
    let mut seen = std::collections::HashSet::new();
    out.replies.retain(|r| seen.insert(r.key.clone()));
    out.unplaced.retain(|u| seen.insert(u.key.clone()));
    if !out.unplaced.is_empty() {
        tracing::info!(source = %cfg.name, unplaced = out.unplaced.len(), "Replies to essays not known yet; kept to place in a later gather.");
    }
    Ok(out)
}

impl From<&Item> for Unplaced {
    fn from(i: &Item) -> Unplaced {
        Unplaced {
            key: i.key.clone(),
            url: i.url.clone(),
            in_reply_to: i.in_reply_to.clone(),
            in_reply_to_href: i.in_reply_to_href.clone(),
            reply_to_comment: i.reply_to_comment,
            author: i.author.clone(),
            published_at: i.published_at,
            content_html: i.content_html.clone(),
        }
    }
}

impl From<Unplaced> for Item {
    fn from(u: Unplaced) -> Item {
        Item {
            key: u.key,
            title: String::new(),
            author: u.author,
            url: u.url,
            published_at: u.published_at,
            updated_at: None,
            summary: None,
            content_html: u.content_html,
            comment_feed: None,
            in_reply_to: u.in_reply_to,
            in_reply_to_href: u.in_reply_to_href,
            reply_to_comment: u.reply_to_comment,
            protected: false,
        }
    }
}
