//! `type = "folder"`: a local folder of essays.
//!
//! Each essay is `<slug>.md`: TOML front matter between `+++` lines, then Markdown.
//! Its replies, if any, are in `<slug>.replies.toml` beside it as `[[reply]]` tables.
//! The README documents every key. Files are read in name order so results are stable.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

use super::normalize::{markdown_to_html, tidy_text};
use super::{Essay, Gathered, Reply, SourceError};
use crate::config::{plain_line, FolderSourceConfig};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    title: String,
    author: Option<String>,
    date: Option<toml::value::Datetime>,
    updated: Option<toml::value::Datetime>,
    summary: Option<String>,
    url: Option<String>,
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepliesFile {
    #[serde(default)]
    reply: Vec<RawReply>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReply {
    id: String,
    author: Option<String>,
    date: Option<toml::value::Datetime>,
    in_reply_to: Option<String>,
    url: Option<String>,
    body: String,
}

/// Reads every essay and reply in the folder.
pub fn gather(config: &FolderSourceConfig) -> Result<Gathered, SourceError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| SourceError::Read { path, source }
    };
    let mut files: Vec<PathBuf> = fs::read_dir(&config.path)
        .map_err(read_err(&config.path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') || n.eq_ignore_ascii_case("README.md"))
        })
        .collect();
    files.sort();

    let mut out = Gathered::default();
    for path in files {
        let text = fs::read_to_string(&path).map_err(read_err(&path))?;
        let mtime = modified(&path);
        let slug = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let essay =
            parse_essay(&text, &slug, mtime, config).map_err(|message| SourceError::Malformed {
                path: path.clone(),
                message,
            })?;
        let replies_path = path.with_file_name(format!("{slug}.replies.toml"));
        if replies_path.exists() {
            let text = fs::read_to_string(&replies_path).map_err(read_err(&replies_path))?;
            let replies = parse_replies(&text, &essay, modified(&replies_path), config).map_err(
                |message| SourceError::Malformed {
                    path: replies_path.clone(),
                    message,
                },
            )?;
            out.replies.extend(replies);
        }
        out.essays.push(essay);
    }
    Ok(out)
}

fn modified(path: &Path) -> Option<DateTime<Utc>> {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(DateTime::<Utc>::from)
}

/// Parses one essay file; the error says what to fix.
fn parse_essay(
    text: &str,
    slug: &str,
    mtime: Option<DateTime<Utc>>,
    config: &FolderSourceConfig,
) -> Result<Essay, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("+++\n")
        .or_else(|| text.strip_prefix("+++\r\n"))
        .ok_or(
            "must start with a `+++` line opening the TOML front matter (title, author, date)",
        )?;
    let end = rest
        .find("\n+++")
        .ok_or("front matter is not closed: add a `+++` line after it")?;
    let front = &rest[..end + 1];
    let body = rest[end + 4..].trim_start_matches(['\r', '\n']);
    let fm: FrontMatter = toml::from_str(front).map_err(|e| describe_toml_error(&e, front, 1))?;

    let title = plain_line(&fm.title);
    if title.is_empty() {
        return Err("front matter `title` is empty".into());
    }
    let key = fm
        .id
        .map(|i| i.trim().to_owned())
        .unwrap_or_else(|| slug.to_owned());
    let url = fm
        .url
        .unwrap_or_else(|| format!("{}/{slug}/", config.base_url.trim_end_matches('/')));
    Ok(Essay {
        source: config.name.clone(),
        key,
        title,
        author: fm.author.map(|a| plain_line(&a)).filter(|a| !a.is_empty()),
        published_at: fm.date.as_ref().map(to_utc).transpose()?.or(mtime),
        updated_at: fm.updated.as_ref().map(to_utc).transpose()?,
        summary: fm
            .summary
            .map(|s| plain_line(&tidy_text(&s)))
            .filter(|s| !s.is_empty()),
        content_html: markdown_to_html(body, Some(&url)),
        url: Some(url),
        origin_id: None,
    })
}

fn parse_replies(
    text: &str,
    essay: &Essay,
    mtime: Option<DateTime<Utc>>,
    config: &FolderSourceConfig,
) -> Result<Vec<Reply>, String> {
    let file: RepliesFile = toml::from_str(text).map_err(|e| describe_toml_error(&e, text, 0))?;
    let mut seen = std::collections::HashSet::new();
    let ids: std::collections::HashSet<&str> = file.reply.iter().map(|r| r.id.as_str()).collect();
    let mut out = Vec::new();
    for (i, r) in file.reply.iter().enumerate() {
        let id = r.id.trim();
        if id.is_empty() || !seen.insert(id) {
            return Err(format!(
                "reply #{} has an empty or repeated `id` \"{id}\"; each reply needs its own",
                i + 1
            ));
        }
        if let Some(parent) = &r.in_reply_to {
            if !ids.contains(parent.as_str()) {
                return Err(format!(
                    "reply \"{id}\" has `in_reply_to = \"{parent}\"` but no reply has that id"
                ));
            }
        }
        let base = essay.url.as_deref().unwrap_or(&config.base_url);
        out.push(Reply {
            source: config.name.clone(),
            key: format!("{}#{id}", essay.key),
            essay_key: essay.key.clone(),
            parent_key: r.in_reply_to.as_ref().map(|p| format!("{}#{p}", essay.key)),
            author: r
                .author
                .as_ref()
                .map(|a| plain_line(a))
                .filter(|a| !a.is_empty()),
            url: Some(
                r.url
                    .clone()
                    .unwrap_or_else(|| format!("{base}#reply-{id}")),
            ),
            published_at: r.date.as_ref().map(to_utc).transpose()?.or(mtime),
            content_html: markdown_to_html(&r.body, Some(base)),
            origin_id: None,
        });
    }
    Ok(out)
}

/// TOML dates: with an offset, as UTC; a local date-time or a bare date is taken as UTC.
fn to_utc(d: &toml::value::Datetime) -> Result<DateTime<Utc>, String> {
    let s = d.to_string();
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    if let Ok(t) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
        return Ok(t.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(format!(
        "date {s} needs a day: write 2026-11-20 or 2026-11-20T09:00:00Z"
    ))
}

fn describe_toml_error(e: &toml::de::Error, text: &str, line_offset: usize) -> String {
    let msg = e.message().trim();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1 + line_offset;
            format!("line {line}: {msg}")
        }
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FolderSourceConfig {
        FolderSourceConfig {
            name: "site".into(),
            path: PathBuf::from("."),
            base_url: "https://example.org/essays".into(),
        }
    }

    #[test]
    fn can_parse_an_essay_with_front_matter() {
        let e = parse_essay(
            "+++\ntitle = \"On  Rivers\"\nauthor = \"Ada\"\ndate = 2026-11-20T09:00:00+01:00\n+++\n\nFirst  paragraph.\n",
            "on-rivers",
            None,
            &cfg(),
        )
        .unwrap();
        assert_eq!(e.title, "On Rivers");
        assert_eq!(e.key, "on-rivers");
        assert_eq!(
            e.url.as_deref(),
            Some("https://example.org/essays/on-rivers/")
        );
        assert_eq!(
            e.published_at.unwrap().to_rfc3339(),
            "2026-11-20T08:00:00+00:00"
        );
        assert_eq!(e.content_html, "<p>First paragraph.</p>");
    }

    #[test]
    fn errors_when_front_matter_has_an_unknown_key() {
        let err = parse_essay(
            "+++\ntitle = \"x\"\nauthr = \"y\"\n+++\nbody",
            "x",
            None,
            &cfg(),
        )
        .unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("authr"), "{err}");
    }

    #[test]
    fn errors_when_front_matter_is_missing() {
        let err = parse_essay("# Just markdown", "x", None, &cfg()).unwrap_err();
        assert!(err.contains("+++"), "{err}");
    }

    #[test]
    fn replies_thread_and_allow_missing_authors() {
        let essay = parse_essay("+++\ntitle = \"x\"\n+++\nbody", "x", None, &cfg()).unwrap();
        let replies = parse_replies(
            "[[reply]]\nid = \"1\"\nauthor = \"Bo\"\nbody = \"Hi\"\n\n[[reply]]\nid = \"2\"\nin_reply_to = \"1\"\nbody = \"  Yes  indeed \"\n",
            &essay,
            None,
            &cfg(),
        )
        .unwrap();
        assert_eq!(replies[0].key, "x#1");
        assert_eq!(replies[1].parent_key.as_deref(), Some("x#1"));
        assert_eq!(replies[1].author, None);
        assert_eq!(replies[1].content_html, "<p>Yes indeed</p>");
    }

    #[test]
    fn errors_when_a_reply_answers_a_missing_reply() {
        let essay = parse_essay("+++\ntitle = \"x\"\n+++\nbody", "x", None, &cfg()).unwrap();
        let err = parse_replies(
            "[[reply]]\nid = \"2\"\nin_reply_to = \"9\"\nbody = \"x\"\n",
            &essay,
            None,
            &cfg(),
        )
        .unwrap_err();
        assert!(err.contains("in_reply_to"), "{err}");
    }
}
