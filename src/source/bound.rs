//! Bounds on untrusted HTML before it is parsed for sanitising. html5ever's tree builder
//! scans the stack of open elements for many tags, so a body of N nested `<div>`s costs
//! O(N²) (100,000 of them: 40 s). One linear pass here caps the size of an item and the
//! depth of its nesting; the words are kept, only the tags past the cap go.

use std::borrow::Cow;

/// Largest HTML body of one item, in bytes; the rest is cut (at a character boundary).
pub const MAX_ITEM_HTML_BYTES: usize = 1024 * 1024;

/// Deepest element nesting kept; tags nested deeper are dropped, their text kept.
pub const MAX_DEPTH: usize = 128;

/// Elements that never have content, so never deepen the nesting.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements whose content is raw text: skipped to their end tag unscanned.
const RAW_TEXT: &[&str] = &[
    "script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript",
];

/// Elements a new one of the same name closes (`<p>a<p>b`, `<li>a<li>b`).
const SELF_CLOSING_SIBLINGS: &[&str] = &[
    "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "rt", "rp",
];

/// `input` cut to [`MAX_ITEM_HTML_BYTES`] with tags deeper than [`MAX_DEPTH`] removed.
/// Borrowed (no copy) when neither limit is reached.
pub fn bound_html(input: &str) -> Cow<'_, str> {
    let cut = if input.len() > MAX_ITEM_HTML_BYTES {
        let mut end = MAX_ITEM_HTML_BYTES;
        while !input.is_char_boundary(end) {
            end -= 1;
        }
        &input[..end]
    } else {
        input
    };
    match limit_depth(cut) {
        Some(shallow) => Cow::Owned(shallow),
        None if cut.len() < input.len() => Cow::Owned(cut.to_owned()),
        None => Cow::Borrowed(input),
    }
}

/// The tag at the start of `s` (which starts with `<`): its lower-case name, whether it
/// is an end tag, whether it closes itself (`/>`), and its length. `None` when `s` does
/// not start a tag (a lone `<` in text).
fn tag_at(s: &[u8]) -> Option<(String, bool, bool, usize)> {
    let mut i = 1;
    let end_tag = s.get(1) == Some(&b'/');
    if end_tag {
        i += 1;
    }
    let start = i;
    while s
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'-')
    {
        i += 1;
    }
    if i == start || !s[start].is_ascii_alphabetic() {
        return None;
    }
    let name = String::from_utf8_lossy(&s[start..i]).to_ascii_lowercase();
    // Attributes: a `>` inside a quoted value does not end the tag.
    let mut quote: Option<u8> = None;
    while let Some(&c) = s.get(i) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'>' => {
                let self_closing = i > 0 && s[i - 1] == b'/';
                return Some((name, end_tag, self_closing, i + 1));
            }
            None => {}
        }
        i += 1;
    }
    Some((name, end_tag, false, s.len()))
}

/// Where the raw text of `name` ends: the start of its `</name`, or the end.
fn raw_text_end(s: &[u8], from: usize, name: &str) -> usize {
    let close = format!("</{name}");
    let mut i = from;
    while let Some(off) = s[i..].iter().position(|&c| c == b'<') {
        let at = i + off;
        if s.len() >= at + close.len()
            && s[at..at + close.len()].eq_ignore_ascii_case(close.as_bytes())
        {
            return at;
        }
        i = at + 1;
    }
    s.len()
}

/// The HTML with tags past [`MAX_DEPTH`] removed; `None` when none were.
fn limit_depth(html: &str) -> Option<String> {
    let s = html.as_bytes();
    let mut open: Vec<String> = Vec::new();
    // Start tags dropped for depth, so their end tags go too.
    let mut dropped_open = 0usize;
    let mut out: Option<String> = None;
    let mut copied = 0usize; // bytes of `html` already handled into `out`
    let mut i = 0usize;
    while let Some(off) = s[i..].iter().position(|&c| c == b'<') {
        let at = i + off;
        let rest = &s[at..];
        if rest.starts_with(b"<!--") {
            i = rest
                .windows(3)
                .position(|w| w == b"-->")
                .map_or(s.len(), |p| at + p + 3);
            continue;
        }
        if rest.starts_with(b"<!") || rest.starts_with(b"<?") {
            i = rest
                .iter()
                .position(|&c| c == b'>')
                .map_or(s.len(), |p| at + p + 1);
            continue;
        }
        let Some((name, end_tag, self_closing, len)) = tag_at(rest) else {
            i = at + 1;
            continue;
        };
        let mut keep = true;
        if end_tag {
            if dropped_open > 0 && open.len() >= MAX_DEPTH {
                dropped_open -= 1;
                keep = false;
            } else if let Some(p) = open.iter().rposition(|n| *n == name) {
                open.truncate(p);
            }
        } else if !self_closing && !VOID.contains(&name.as_str()) {
            if SELF_CLOSING_SIBLINGS.contains(&name.as_str())
                && open.last().is_some_and(|n| *n == name)
            {
                open.pop();
            }
            if open.len() >= MAX_DEPTH {
                dropped_open += 1;
                keep = false;
            } else {
                open.push(name.clone());
            }
        }
        let mut next = at + len;
        if !end_tag && RAW_TEXT.contains(&name.as_str()) {
            next = raw_text_end(s, next, &name);
        }
        if !keep {
            let buf = out.get_or_insert_with(|| String::with_capacity(html.len()));
            buf.push_str(&html[copied..at]);
            copied = at + len;
        }
        i = next;
    }
    let mut buf = out?;
    buf.push_str(&html[copied..]);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_html_is_untouched_and_not_copied() {
        let html = "<p>One<p>Two <a href=\"x?a>b\">link</a><ul><li>a<li>b</ul><br><img src=x>";
        assert!(matches!(bound_html(html), Cow::Borrowed(_)));
        let many_p = "<p>para".repeat(1000);
        assert!(matches!(bound_html(&many_p), Cow::Borrowed(_)));
    }

    #[test]
    fn deep_nesting_keeps_its_words_and_loses_the_tags_past_the_cap() {
        let n = 10_000;
        let html = format!("{}deep words{}", "<div>".repeat(n), "</div>".repeat(n));
        let out = bound_html(&html);
        assert!(out.contains("deep words"));
        assert_eq!(out.matches("<div>").count(), MAX_DEPTH);
        assert_eq!(out.matches("</div>").count(), MAX_DEPTH);
        let unclosed = "<ul><li>x".repeat(n);
        let out = bound_html(&unclosed);
        assert!(out.matches("<ul>").count() <= MAX_DEPTH / 2);
        assert_eq!(out.matches('x').count(), n, "every word stays");
    }

    #[test]
    fn script_text_is_not_read_as_tags_and_size_is_capped() {
        let html = format!("<script>{}</script><p>after", "<div>".repeat(1000));
        assert!(matches!(bound_html(&html), Cow::Borrowed(_)));
        let big = "é".repeat(MAX_ITEM_HTML_BYTES);
        let out = bound_html(&big);
        assert!(out.len() <= MAX_ITEM_HTML_BYTES);
    }
}
