//! Where a problem is: the keys each table knows (for "did you mean"), serde's
//! messages in plain words, and offsets turned into a line and a column.

use super::*;

pub(super) fn describe_serde_error(message: &str) -> String {
    // serde says "missing field `x`"; name it as a key the operator must add.
    let m = message.trim();
    if let Some(rest) = m.strip_prefix("missing field ") {
        format!("required key {rest} is missing; add it")
    } else {
        m.to_owned()
    }
}

pub(super) fn collect_path(p: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
    use serde_ignored::Path as P;
    match p {
        P::Root => {}
        P::Seq { parent, index } => {
            collect_path(parent, out);
            out.push(Seg::Index(*index));
        }
        P::Map { parent, key } => {
            collect_path(parent, out);
            out.push(Seg::Key(key.clone()));
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            collect_path(parent, out)
        }
    }
}

/// Finds where a key path stands in the document, and spells it as `a[0].b`.
pub(super) fn locate(root: &DeTable<'_>, segs: &[Seg]) -> (usize, String) {
    let mut dotted = String::new();
    let mut offset = 0;
    let mut table: Option<&DeTable<'_>> = Some(root);
    let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !dotted.is_empty() {
                    dotted.push('.');
                }
                dotted.push_str(k);
                let found = table.and_then(|t| t.iter().find(|(key, _)| key.get_ref() == k));
                table = None;
                array = None;
                if let Some((key, value)) = found {
                    offset = key.span().start;
                    match value.get_ref() {
                        DeValue::Table(t) => table = Some(t),
                        DeValue::Array(a) => array = Some(a.as_ref()),
                        _ => {}
                    }
                }
            }
            Seg::Index(i) => {
                dotted.push_str(&format!("[{i}]"));
                let found = array.and_then(|a| a.get(*i));
                table = None;
                array = None;
                if let Some(v) = found {
                    offset = v.span().start;
                    if let DeValue::Table(t) = v.get_ref() {
                        table = Some(t);
                    }
                }
            }
        }
    }
    (offset, dotted)
}

pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Validator<'_> {
    pub(super) fn suggest(&self, segs: &[Seg]) -> String {
        let Some(Seg::Key(last)) = segs.last() else {
            return String::new();
        };
        let section = segs.iter().find_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        });
        let known: &[&str] = match (section, segs.len()) {
            (_, 1) => &[
                "site",
                "state",
                "delivery",
                "http",
                "daemon",
                "web",
                "source",
                "digest",
                "subscriber",
            ],
            (Some("daemon"), _) => &["gather_every", "shutdown_grace"],
            (Some("web"), _) => &[
                "listen",
                "base_url",
                "secret_env",
                "secret_file",
                "subscribe_per_ip",
                "subscribe_per_address",
                "behind_proxy",
                "max_connections",
                "metrics_listen",
                "metrics_token_env",
            ],
            (Some("site"), _) => &[
                "name",
                "base_url",
                "from",
                "reply_to",
                "timezone",
                "templates",
                "archive_url",
            ],
            (Some("state"), _) => &[
                "path",
                "url",
                "password_env",
                "password_file",
                "tls",
                "ca_file",
            ],
            (Some("delivery"), 2) => &[
                "transport",
                "outbox",
                "concurrency",
                "rate",
                "max_attempts",
                "retry_base",
                "retry_within_run",
                "retry_for",
                "return_path",
                "verp",
                "soft_bounce_limit",
                "soft_bounce_window",
                "smtp",
                "dkim",
            ],
            (Some("delivery"), _) => &[
                "host",
                "port",
                "tls",
                "username",
                "password_env",
                "password_file",
                "ca_file",
                "timeout",
                "data_timeout",
                "helo",
                "allow_insecure",
                "selector",
                "domain",
                "key_file",
                "algorithm",
            ],
            (Some("source"), _) => &[
                "name",
                "type",
                "path",
                "base_url",
                "url",
                "comments_url",
                "comment_feeds",
                "comment_feed_limit",
                "max_pages",
                "recheck_window",
                "include_protected",
                "allow_private",
                "follow_hosts",
                "max_new_items",
                "gather_budget",
                "gather_every",
            ],
            (Some("http"), _) => &[
                "timeout",
                "connect_timeout",
                "max_body_bytes",
                "retries",
                "per_host",
            ],
            (Some("digest"), _) => &[
                "name",
                "title",
                "schedule",
                "timezone",
                "subject",
                "template",
                "include",
                "sources",
                "skip_if_empty",
                "max_essays",
                "first_edition_lookback",
                "catch_up",
                "local_time",
                "replies",
                "auto_follow",
                "archive",
            ],
            (Some("subscriber"), _) => &["email", "name", "digests", "timezone"],
            _ => &[],
        };
        known
            .iter()
            .filter(|k| edit_distance(k, last) <= 2)
            .min_by_key(|k| edit_distance(k, last))
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_else(|| format!("; known keys here: {}", known.join(", ")))
    }
}
