//! Decides what a digest's next edition contains: its window of first-seen times, which
//! essays and replies fall in it, and how replies thread under their essays. Pure: the
//! caller reads the store and the clock and passes plain values in.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Digest;
use crate::store::{EditionRow, StoredEssay, StoredReply};

/// The half-open span `[from, to)` of first-seen times an edition covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
}

/// The next window: from where the previous edition stopped, or the digest's look-back
/// for a first edition, up to `now`.
pub fn next_window(digest: &Digest, previous: Option<&EditionRow>, now: DateTime<Utc>) -> Window {
    let from = previous
        .map(|e| e.window_to)
        .unwrap_or(now - digest.first_edition_lookback);
    Window { from, to: now }
}

/// The items chosen for an edition, in display order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Essays, newest first.
    pub essays: Vec<StoredEssay>,
    /// Replies, grouped by essay, threads in order.
    pub replies: Vec<StoredReply>,
}

impl Selection {
    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.essays.is_empty() && self.replies.is_empty()
    }
}

/// Chooses an edition's items from what the store saw in the window.
///
/// Novelty is the store's first-seen time. Items first seen in a source's very first
/// gather are that source's archive: they count only if they were published within the
/// digest's look-back, so adding a source never mails its whole history.
pub fn select(
    digest: &Digest,
    window: &Window,
    essays: Vec<StoredEssay>,
    replies: Vec<StoredReply>,
) -> Selection {
    let cutoff = window.to - digest.first_edition_lookback;
    let in_window = |seen: DateTime<Utc>, backfill: bool, published: Option<DateTime<Utc>>| {
        seen >= window.from
            && seen < window.to
            && (!backfill || published.unwrap_or(seen) >= cutoff)
    };
    let mut essays: Vec<StoredEssay> = if digest.include.essays {
        essays
            .into_iter()
            .filter(|e| digest.sources.contains(&e.essay.source))
            .filter(|e| in_window(e.first_seen_at, e.backfill, e.essay.published_at))
            .collect()
    } else {
        Vec::new()
    };
    essays.sort_by(|a, b| {
        let when = |e: &StoredEssay| e.essay.published_at.unwrap_or(e.first_seen_at);
        when(b).cmp(&when(a)).then(a.id.cmp(&b.id))
    });
    if let Some(max) = digest.max_essays {
        essays.truncate(max);
    }
    let replies: Vec<StoredReply> = if digest.include.replies {
        replies
            .into_iter()
            .filter(|r| digest.sources.contains(&r.reply.source))
            .filter(|r| in_window(r.first_seen_at, r.backfill, r.reply.published_at))
            .collect()
    } else {
        Vec::new()
    };
    Selection {
        essays,
        replies: thread_order(replies),
    }
}

/// Orders replies by essay (first reply's time), then depth-first through each thread,
/// siblings by time.
fn thread_order(mut replies: Vec<StoredReply>) -> Vec<StoredReply> {
    let when = |r: &StoredReply| r.reply.published_at.unwrap_or(r.first_seen_at);
    replies.sort_by(|a, b| when(a).cmp(&when(b)).then(a.id.cmp(&b.id)));
    let keys: HashSet<(String, String)> = replies
        .iter()
        .map(|r| (r.reply.source.clone(), r.reply.key.clone()))
        .collect();
    let mut children: HashMap<(String, String), Vec<usize>> = HashMap::new();
    let mut roots_by_essay: Vec<((String, String), Vec<usize>)> = Vec::new();
    for (i, r) in replies.iter().enumerate() {
        let parent = r
            .reply
            .parent_key
            .as_ref()
            .map(|p| (r.reply.source.clone(), p.clone()))
            .filter(|p| keys.contains(p));
        match parent {
            Some(p) => children.entry(p).or_default().push(i),
            None => {
                let essay = (r.reply.source.clone(), r.reply.essay_key.clone());
                match roots_by_essay.iter_mut().find(|(e, _)| *e == essay) {
                    Some((_, list)) => list.push(i),
                    None => roots_by_essay.push((essay, vec![i])),
                }
            }
        }
    }
    let mut order = Vec::with_capacity(replies.len());
    fn visit(
        i: usize,
        replies: &[StoredReply],
        children: &HashMap<(String, String), Vec<usize>>,
        order: &mut Vec<usize>,
    ) {
        order.push(i);
        let key = (
            replies[i].reply.source.clone(),
            replies[i].reply.key.clone(),
        );
        for &c in children.get(&key).map(Vec::as_slice).unwrap_or(&[]) {
            visit(c, replies, children, order);
        }
    }
    for (_, roots) in &roots_by_essay {
        for &r in roots {
            visit(r, &replies, &children, &mut order);
        }
    }
    let mut slots: Vec<Option<StoredReply>> = replies.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// An essay as a template sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EssayView {
    /// Plain-text title.
    pub title: String,
    /// Plain-text author, if known.
    pub author: Option<String>,
    /// Link to the essay.
    pub url: Option<String>,
    /// RFC 3339 UTC publication time (first-seen time when the source gave none).
    pub published_at: String,
    /// Plain-text summary, if the source gave one.
    pub summary: Option<String>,
    /// Sanitised HTML body.
    pub content_html: String,
}

/// One reply as a template sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplyView {
    /// Plain-text author; `None` for readers who left no name.
    pub author: Option<String>,
    /// Link to the reply.
    pub url: Option<String>,
    /// RFC 3339 UTC time.
    pub published_at: String,
    /// Sanitised HTML body.
    pub content_html: String,
    /// 0 for a reply to the essay, 1 for a reply to that reply, …
    pub depth: usize,
    /// Answers a reply sent in an earlier edition.
    pub answers_earlier: bool,
}

/// The replies to one essay.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThreadView {
    /// The essay they answer (it may be from an earlier edition).
    pub essay: EssayView,
    /// Replies in thread order.
    pub replies: Vec<ReplyView>,
}

/// What a template renders: the edition's content, the same for every subscriber.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DigestView {
    /// New essays.
    pub essays: Vec<EssayView>,
    /// New replies, grouped by essay.
    pub threads: Vec<ThreadView>,
    /// Number of replies across all threads.
    pub reply_count: usize,
}

/// Builds the template's view of an edition. `parents` holds the essays the replies
/// answer (looked up by the caller), which may lie outside the edition.
pub fn compose(sel: &Selection, parents: &[StoredEssay]) -> DigestView {
    let essay_view = |e: &StoredEssay| EssayView {
        title: e.essay.title.clone(),
        author: e.essay.author.clone(),
        url: e.essay.url.clone(),
        published_at: crate::store::ts(e.essay.published_at.unwrap_or(e.first_seen_at)),
        summary: e.essay.summary.clone(),
        content_html: e.essay.content_html.clone(),
    };
    let mut depth: HashMap<(&str, &str), usize> = HashMap::new();
    let mut threads: Vec<ThreadView> = Vec::new();
    let mut thread_of: HashMap<(String, String), usize> = HashMap::new();
    for r in &sel.replies {
        let essay_id = (r.reply.source.clone(), r.reply.essay_key.clone());
        let idx = match thread_of.get(&essay_id) {
            Some(i) => *i,
            None => {
                let essay = parents
                    .iter()
                    .chain(sel.essays.iter())
                    .find(|e| e.essay.source == essay_id.0 && e.essay.key == essay_id.1)
                    .map(essay_view)
                    .unwrap_or_else(|| EssayView {
                        title: "An earlier essay".into(),
                        author: None,
                        url: None,
                        published_at: crate::store::ts(r.first_seen_at),
                        summary: None,
                        content_html: String::new(),
                    });
                threads.push(ThreadView {
                    essay,
                    replies: Vec::new(),
                });
                thread_of.insert(essay_id, threads.len() - 1);
                threads.len() - 1
            }
        };
        let parent_depth = r
            .reply
            .parent_key
            .as_deref()
            .and_then(|p| depth.get(&(r.reply.source.as_str(), p)).copied());
        let d = parent_depth.map(|p| p + 1).unwrap_or(0);
        depth.insert((r.reply.source.as_str(), r.reply.key.as_str()), d);
        threads[idx].replies.push(ReplyView {
            author: r.reply.author.clone(),
            url: r.reply.url.clone(),
            published_at: crate::store::ts(r.reply.published_at.unwrap_or(r.first_seen_at)),
            content_html: r.reply.content_html.clone(),
            depth: d,
            answers_earlier: r.reply.parent_key.is_some() && parent_depth.is_none(),
        });
    }
    DigestView {
        essays: sel.essays.iter().map(essay_view).collect(),
        reply_count: sel.replies.len(),
        threads,
    }
}
