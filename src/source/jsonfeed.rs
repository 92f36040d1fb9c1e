//! JSON Feed 1.0 and 1.1, read leniently as feed readers do: the version URL with
//! `https://` or `http://` (a popular WordPress plugin writes the latter), ids that are
//! numbers, 1.1's `authors` list winning over 1.0's deprecated `author`, item authors
//! inheriting the feed's, and dates read by [`super::dates`]. JSON that is not a JSON
//! Feed is refused with an error that says what it is.

use serde::Deserialize;
use serde_json::Value;

use super::dates;
use super::feed::{absolute, Item};
use super::identity::{fallback_key, normalize_ref};
use super::normalize::{html_line, sanitize_html};
use crate::config::plain_line;

#[derive(Debug, Deserialize)]
struct Author {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Feed {
    #[serde(default)]
    author: Option<Author>,
    #[serde(default)]
    authors: Option<Vec<Author>>,
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JsonItem {
    id: Option<Value>,
    url: Option<String>,
    title: Option<String>,
    content_html: Option<String>,
    content_text: Option<String>,
    summary: Option<String>,
    date_published: Option<String>,
    date_modified: Option<String>,
    author: Option<Author>,
    authors: Option<Vec<Author>>,
}

/// The first name of `authors` (1.1), else of `author` (1.0).
fn name_of(authors: &Option<Vec<Author>>, author: &Option<Author>) -> Option<String> {
    authors
        .iter()
        .flatten()
        .chain(author.iter())
        .find_map(|a| a.name.as_deref())
        .map(html_line)
        .filter(|n| !n.is_empty())
}

/// What a JSON document that is not a JSON Feed is, for the error.
fn describe(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
            let version = map.get("version").and_then(Value::as_str);
            match version {
                Some(v) => format!("a JSON document whose \"version\" is {v:?}, not a JSON Feed version (https://jsonfeed.org/version/1 or /1.1)"),
                None => format!(
                    "a JSON document, not a JSON Feed: it has no \"version\" naming jsonfeed.org (its keys: {})",
                    keys.join(", ")
                ),
            }
        }
        Value::Array(_) => {
            "a JSON array, not a JSON Feed (a feed is an object with \"version\" and \"items\")"
                .into()
        }
        _ => "a JSON value, not a JSON Feed".into(),
    }
}

/// Parses a JSON Feed; `base_url` resolves relative links.
pub fn parse(text: &str, base_url: &str) -> Result<Vec<Item>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let is_feed = value
        .get("version")
        .and_then(Value::as_str)
        .is_some_and(|v| v.contains("jsonfeed.org/version/1"));
    if !is_feed {
        return Err(describe(&value));
    }
    let feed: Feed = serde_json::from_value(value)
        .map_err(|e| format!("a JSON Feed that cannot be read: {e}"))?;
    let feed_author = name_of(&feed.authors, &feed.author);
    let mut items = Vec::with_capacity(feed.items.len().min(super::feed::MAX_ITEMS_PER_FEED));
    for raw in feed.items.into_iter().take(super::feed::MAX_ITEMS_PER_FEED) {
        // One malformed item is skipped, not the whole feed.
        let Ok(i) = serde_json::from_value::<JsonItem>(raw) else {
            continue;
        };
        let id = match &i.id {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let url = i.url.as_deref().and_then(|u| absolute(u, base_url));
        let published = i.date_published.as_deref().and_then(dates::parse);
        let updated = i.date_modified.as_deref().and_then(dates::parse);
        let body_html = i
            .content_html
            .clone()
            .or_else(|| {
                i.content_text.as_deref().map(|t| {
                    t.split("\n\n")
                        .map(|p| format!("<p>{}</p>", ammonia::clean_text(p.trim())))
                        .collect()
                })
            })
            .or_else(|| i.summary.as_deref().map(ammonia::clean_text))
            .unwrap_or_default();
        let title = i.title.as_deref().map(html_line).unwrap_or_default();
        let key = if !id.trim().is_empty() {
            normalize_ref(&id)
        } else if let Some(u) = &url {
            normalize_ref(u)
        } else {
            fallback_key(&[
                &title,
                &published.map(|p| p.to_rfc3339()).unwrap_or_default(),
            ])
        };
        let item_base = url.clone().unwrap_or_else(|| base_url.to_owned());
        items.push(Item {
            key,
            title,
            author: name_of(&i.authors, &i.author).or_else(|| feed_author.clone()),
            url,
            published_at: published.or(updated),
            updated_at: updated,
            summary: i
                .summary
                .as_deref()
                .filter(|_| i.content_html.is_some() || i.content_text.is_some())
                .map(plain_line)
                .filter(|s| !s.is_empty()),
            content_html: sanitize_html(&body_html, Some(&item_base)),
            comment_feed: None,
            in_reply_to: None,
            in_reply_to_href: None,
            reply_to_comment: None,
            protected: false,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_with_http_scheme_and_numeric_ids_parse() {
        let items = parse(
            r#"{"version":"http://jsonfeed.org/version/1","title":"Blog","author":{"name":"Site Owner"},
                "items":[{"id":123,"url":"https://b.org/a/","title":"A","content_html":"<p>x</p>","date_published":"2026-11-24T12:00"}]}"#,
            "https://b.org/feed.json",
        )
        .unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key, "123");
        assert_eq!(items[0].author.as_deref(), Some("Site Owner"));
        assert_eq!(
            items[0].published_at.map(|t| t.to_rfc3339()),
            Some("2026-11-24T12:00:00+00:00".into())
        );
    }

    #[test]
    fn authors_of_1_1_win_over_the_deprecated_author() {
        let items = parse(
            r#"{"version":"https://jsonfeed.org/version/1.1","items":[
                {"id":"1","title":"T","content_text":"x","author":{"name":"Old Field"},"authors":[{"name":"Ada Lovelace"}]}]}"#,
            "https://b.org/",
        )
        .unwrap();
        assert_eq!(items[0].author.as_deref(), Some("Ada Lovelace"));
    }

    #[test]
    fn json_that_is_not_a_feed_says_what_it_is() {
        let e = parse(r#"{"posts":[],"total":0}"#, "https://b.org/").unwrap_err();
        assert!(
            e.contains("not a JSON Feed") && e.contains("posts, total"),
            "{e}"
        );
        assert!(!e.contains("missing field"), "{e}");
        let e = parse("[1,2]", "https://b.org/").unwrap_err();
        assert!(e.contains("JSON array"), "{e}");
    }
}
