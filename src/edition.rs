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
    /// Essays of the window left out by `max_essays`.
    pub more_essays: usize,
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
            // The archive counts only where its date says it is recent: an undated item
            // of a first gather could be years old, so it is archive, never news.
            && (!backfill || published.is_some_and(|p| p >= cutoff))
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
    let mut more_essays = 0;
    if let Some(max) = digest.max_essays {
        more_essays = essays.len().saturating_sub(max);
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
        more_essays,
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
    /// Its row id (what follow links name); 0 for an essay not stored.
    pub id: i64,
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
    /// Replies Gazette had seen under it when the edition was made.
    pub reply_count: i64,
    /// The reader's "Follow the conversation" page; set in each copy when `[web]` is.
    pub follow_url: Option<String>,
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
    /// The reader's "Stop following" page; set in each copy of a `replies = "followed"`
    /// digest when `[web]` is.
    pub unfollow_url: Option<String>,
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
    /// Essays of this edition's window left out by `max_essays` ("and N more").
    pub more_essays: usize,
}

/// Builds the template's view of an edition. `parents` holds the essays the replies
/// answer (looked up by the caller), which may lie outside the edition.
pub fn compose(sel: &Selection, parents: &[StoredEssay]) -> DigestView {
    let essay_view = |e: &StoredEssay| EssayView {
        id: e.id,
        title: e.essay.title.clone(),
        author: e.essay.author.clone(),
        url: e.essay.url.clone(),
        published_at: crate::store::ts(e.essay.published_at.unwrap_or(e.first_seen_at)),
        summary: e.essay.summary.clone(),
        content_html: e.essay.content_html.clone(),
        reply_count: 0,
        follow_url: None,
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
                        id: 0,
                        title: "An earlier essay".into(),
                        author: None,
                        url: None,
                        published_at: crate::store::ts(r.first_seen_at),
                        summary: None,
                        content_html: String::new(),
                        reply_count: 0,
                        follow_url: None,
                    });
                threads.push(ThreadView {
                    essay,
                    replies: Vec::new(),
                    unfollow_url: None,
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
        more_essays: sel.more_essays,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_schedule, Include};
    use crate::source::{Essay, Reply};
    use chrono::{Duration, TimeZone};

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn digest() -> Digest {
        Digest {
            name: "weekly".into(),
            title: "Weekly".into(),
            schedule: parse_schedule("@weekly").unwrap(),
            schedule_text: "@weekly".into(),
            timezone: chrono_tz::UTC,
            subject: "x".into(),
            template: "default".into(),
            include: Include {
                essays: true,
                replies: true,
            },
            sources: vec!["site".into()],
            skip_if_empty: true,
            max_essays: None,
            first_edition_lookback: Duration::days(7),
            catch_up: crate::schedule::CatchUp::Once,
            local_time: false,
            replies: crate::config::Replies::All,
            auto_follow: false,
            archive: false,
        }
    }

    fn essay(
        id: i64,
        seen: DateTime<Utc>,
        published: Option<DateTime<Utc>>,
        backfill: bool,
    ) -> StoredEssay {
        StoredEssay {
            id,
            first_seen_at: seen,
            backfill,
            essay: Essay {
                source: "site".into(),
                key: format!("e{id}"),
                title: format!("Essay {id}"),
                author: None,
                url: None,
                published_at: published,
                updated_at: None,
                summary: None,
                content_html: String::new(),
                origin_id: None,
            },
        }
    }

    fn reply(id: i64, essay: i64, parent: Option<i64>, seen: DateTime<Utc>) -> StoredReply {
        StoredReply {
            id,
            first_seen_at: seen,
            backfill: false,
            reply: Reply {
                source: "site".into(),
                key: format!("r{id}"),
                essay_key: format!("e{essay}"),
                parent_key: parent.map(|p| format!("r{p}")),
                author: None,
                url: None,
                published_at: Some(seen),
                content_html: String::new(),
                origin_id: None,
            },
        }
    }

    #[test]
    fn first_window_reaches_back_by_the_lookback() {
        let w = next_window(&digest(), None, t(26, 8));
        assert_eq!(
            w,
            Window {
                from: t(19, 8),
                to: t(26, 8)
            }
        );
    }

    #[test]
    fn later_windows_start_where_the_previous_edition_stopped() {
        let prev = EditionRow {
            id: 1,
            digest: "weekly".into(),
            audience: String::new(),
            number: 1,
            scheduled_for: t(19, 8),
            window_from: t(12, 8),
            window_to: t(19, 8),
            created_at: t(19, 8),
            finished_at: None,
        };
        let w = next_window(&digest(), Some(&prev), t(26, 8));
        assert_eq!(
            w,
            Window {
                from: t(19, 8),
                to: t(26, 8)
            }
        );
    }

    #[test]
    fn archive_items_older_than_the_lookback_are_not_news() {
        let w = Window {
            from: t(19, 8),
            to: t(26, 8),
        };
        let old = essay(
            1,
            t(26, 7),
            Some(Utc.with_ymd_and_hms(2024, 3, 2, 9, 0, 0).unwrap()),
            true,
        );
        let recent = essay(2, t(26, 7), Some(t(24, 9)), true);
        let undated = essay(3, t(26, 7), None, true);
        // Undated, but first seen after the source's first gather: news.
        let undated_later = essay(4, t(26, 7), None, false);
        let sel = select(
            &digest(),
            &w,
            vec![old, recent, undated, undated_later],
            vec![],
        );
        let ids: Vec<i64> = sel.essays.iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            vec![4, 2],
            "newest first; the 2024 essay and the undated archive left out"
        );
    }

    #[test]
    fn novelty_comes_from_first_seen_not_from_claimed_dates() {
        let w = Window {
            from: t(19, 8),
            to: t(26, 8),
        };
        // Claims to be from 2024, but Gazette first saw it this week after the source's
        // first gather: it is new.
        let backdated = essay(
            1,
            t(25, 7),
            Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()),
            false,
        );
        // Claims to be new, but was first seen before the window: already sent.
        let stale = essay(2, t(18, 7), Some(t(25, 0)), false);
        let sel = select(&digest(), &w, vec![backdated, stale], vec![]);
        assert_eq!(sel.essays.iter().map(|e| e.id).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn max_essays_keeps_the_newest() {
        let w = Window {
            from: t(19, 8),
            to: t(26, 8),
        };
        let mut d = digest();
        d.max_essays = Some(2);
        let essays = (1..=4)
            .map(|i| essay(i, t(20, 8), Some(t(20 + i as u32, 0)), false))
            .collect();
        let sel = select(&d, &w, essays, vec![]);
        assert_eq!(
            sel.essays.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![4, 3]
        );
    }

    #[test]
    fn include_filters_essays_or_replies() {
        let w = Window {
            from: t(19, 8),
            to: t(26, 8),
        };
        let mut d = digest();
        d.include = Include {
            essays: false,
            replies: true,
        };
        let sel = select(
            &d,
            &w,
            vec![essay(1, t(20, 8), None, false)],
            vec![reply(1, 1, None, t(20, 9))],
        );
        assert!(sel.essays.is_empty());
        assert_eq!(sel.replies.len(), 1);
    }

    #[test]
    fn replies_are_threaded_under_their_essays() {
        let w = Window {
            from: t(19, 8),
            to: t(26, 8),
        };
        let replies = vec![
            reply(1, 1, None, t(20, 1)),
            reply(2, 2, None, t(20, 2)),
            reply(3, 1, Some(1), t(20, 3)),
            reply(4, 1, None, t(20, 4)),
            reply(5, 1, Some(3), t(20, 5)),
            reply(6, 1, Some(99), t(20, 6)),
        ];
        let sel = select(&digest(), &w, vec![], replies);
        let order: Vec<i64> = sel.replies.iter().map(|r| r.id).collect();
        assert_eq!(order, vec![1, 3, 5, 4, 6, 2]);
        let parents = vec![
            essay(1, t(1, 0), None, false),
            essay(2, t(1, 0), None, false),
        ];
        let view = compose(&sel, &parents);
        assert_eq!(view.threads.len(), 2);
        assert_eq!(view.threads[0].essay.title, "Essay 1");
        let depths: Vec<usize> = view.threads[0].replies.iter().map(|r| r.depth).collect();
        assert_eq!(depths, vec![0, 1, 2, 0, 0]);
        assert!(
            view.threads[0].replies[4].answers_earlier,
            "r6 answers a reply from an earlier edition"
        );
        assert_eq!(view.reply_count, 6);
    }
}
