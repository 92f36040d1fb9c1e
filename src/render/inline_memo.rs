//! CSS inlining shared between the copies of one edition.
//!
//! Inlining parses and re-serialises the whole document, a quarter of the CPU a copy
//! costs, yet the copies of an edition differ only in the recipient's own values (name,
//! address, personal links). So each copy's HTML is *masked* (those values replaced by
//! placeholders), the masked document is inlined once, and each copy gets the result with
//! its values put back. That is exact only under conditions checked for every copy;
//! when any fails the copy is inlined on its own:
//!
//! - every value is "plain" (letters, digits and ` .@_+-:/?=%~#,`), so HTML
//!   serialisation writes it unchanged and no selector can see a difference;
//! - each placeholder stands in text outside `<style>`/`<script>`, or in an `href`
//!   attribute's value: never in a tag or attribute name, a class or an id;
//! - the stylesheet has no attribute selectors (`[href^=…]` would see the values);
//! - the document contains no placeholder characters of its own.
//!
//! A differential test renders many awkward recipients both ways and compares bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Placeholder delimiters, from the Unicode private use area.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// Most masked documents remembered per edition (one per time zone or template branch
/// in practice); past that, copies are inlined on their own.
const CAPACITY: usize = 64;

/// The inlined masked documents of one edition.
#[derive(Debug, Default)]
pub struct InlineMemo {
    done: Mutex<HashMap<String, Arc<String>>>,
    reused: AtomicUsize,
}

fn is_plain(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || " .@_+-:/?=%~#,".contains(c))
}

/// Whether the documents's `<style>` blocks use attribute selectors.
fn styles_use_attributes(html: &str) -> bool {
    let mut rest = html;
    while let Some(start) = rest.find("<style") {
        let after = &rest[start..];
        let end = after.find("</style").unwrap_or(after.len());
        if after[..end].contains('[') {
            return true;
        }
        rest = &after[end..];
    }
    false
}

/// Whether every placeholder in `masked` stands where its value cannot change the
/// document's structure or which rules apply.
fn placeholders_are_safe(masked: &str) -> bool {
    // Tag names are case-insensitive (`<STYLE>`); ASCII lower-casing keeps byte offsets.
    let masked = &masked.to_ascii_lowercase();
    for (pos, _) in masked.match_indices(OPEN) {
        let before = &masked[..pos];
        let tag_open = before.rfind('<');
        let tag_close = before.rfind('>');
        let in_tag = match (tag_open, tag_close) {
            (Some(o), Some(c)) => o > c,
            (Some(_), None) => true,
            _ => false,
        };
        if in_tag {
            // Only inside a quoted href value: `… href="…<placeholder>`.
            let tag = &before[tag_open.unwrap_or(0)..];
            let quotes = tag.matches('"').count();
            let Some(q) = tag.rfind('"') else {
                return false;
            };
            if quotes % 2 != 1 || !tag[..q].ends_with("href=") {
                return false;
            }
        } else {
            for (open, close) in [("<style", "</style"), ("<script", "</script")] {
                if before.rfind(open) > before.rfind(close) {
                    return false;
                }
            }
        }
    }
    true
}

impl InlineMemo {
    /// How many copies reused an earlier copy's inlining.
    pub fn reused(&self) -> usize {
        self.reused.load(Ordering::Relaxed)
    }

    /// Inlines `html` (a copy whose recipient-specific values are `values`) with
    /// `inline`, reusing the work done for an earlier copy when that is exact.
    pub fn inline<E>(
        &self,
        html: &str,
        values: &[&str],
        inline: impl Fn(&str) -> Result<String, E>,
    ) -> Result<String, E> {
        let Some(masked) = mask(html, values) else {
            return inline(html);
        };
        let known = self
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&masked)
            .cloned();
        let inlined = match known {
            Some(i) => {
                self.reused.fetch_add(1, Ordering::Relaxed);
                i
            }
            None => {
                let i = Arc::new(inline(&masked)?);
                let mut done = self
                    .done
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if done.len() < CAPACITY {
                    done.insert(masked, Arc::clone(&i));
                }
                i
            }
        };
        Ok(unmask(&inlined, values))
    }
}

/// The document with each value replaced by a numbered placeholder, or `None` when
/// sharing the inlining would not be exact.
fn mask(html: &str, values: &[&str]) -> Option<String> {
    if values.iter().any(|v| !is_plain(v))
        || html.contains([OPEN, CLOSE])
        || styles_use_attributes(&html.to_ascii_lowercase())
    {
        return None;
    }
    // Longest first, so that a value inside another (an address inside a link) does
    // not split it.
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(values[i].len()));
    let mut masked = html.to_owned();
    for i in order {
        let escaped = tera::escape_html(values[i]);
        masked = masked.replace(&escaped, &format!("{OPEN}{i}{CLOSE}"));
    }
    placeholders_are_safe(&masked).then_some(masked)
}

fn unmask(inlined: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(inlined.len() + 256);
    let mut rest = inlined;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len_utf8()..];
        let Some(end) = after.find(CLOSE) else {
            out.push_str(&rest[start..]);
            return out;
        };
        match after[..end]
            .parse::<usize>()
            .ok()
            .and_then(|i| values.get(i))
        {
            // Plain values serialise as themselves in text and in attributes.
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..start + OPEN.len_utf8() + end + CLOSE.len_utf8()]),
        }
        rest = &after[end + CLOSE.len_utf8()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_and_href_positions_are_shared() {
        let v = ["Ada Lovelace"];
        assert!(mask("<p>Dear Ada Lovelace,</p>", &v).is_some());
        assert!(mask("<a href=\"https://x.org/Ada Lovelace\">x</a>", &v).is_some());
        assert!(mask("<p class=\"Ada Lovelace\">x</p>", &v).is_none());
        assert!(mask("<style>p{}</style><p>Ada Lovelace</p>", &v).is_some());
        assert!(mask("<style>/* Ada Lovelace */</style>", &v).is_none());
        assert!(mask("<STYLE>/* Ada Lovelace */</STYLE>", &v).is_none());
        assert!(mask("<STYLE>a[href]{}</STYLE><p>Ada Lovelace</p>", &v).is_none());
        assert!(mask("<style>a[href]{}</style><p>Ada Lovelace</p>", &v).is_none());
        assert!(mask("<p>Ada Lovelace</p>", &["O'Brien"]).is_none());
        assert!(
            mask("<div>x</div>", &["div"]).is_none(),
            "a value in markup"
        );
    }

    #[test]
    fn unmasking_restores_each_value() {
        let masked = format!("<p>{OPEN}0{CLOSE} at {OPEN}1{CLOSE}</p>");
        assert_eq!(
            unmask(&masked, &["Ada", "a@x.org"]),
            "<p>Ada at a@x.org</p>"
        );
    }
}
