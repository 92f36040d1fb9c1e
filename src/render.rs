//! Turns an edition's view and one subscriber into a subject, an HTML body (CSS inlined)
//! and a plain-text body, through Tera templates loaded once at start.
//!
//! Safety: auto-escaping is switched on explicitly for `.html` templates (Tera 1.x only
//! does so by default for some suffixes), `get_env` is replaced by a function that always
//! fails so a template cannot read secrets from the environment, and the CSS inliner never
//! loads a stylesheet from anywhere.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;
use tera::{Context, Tera};

mod inline_memo;
pub use inline_memo::InlineMemo;

use crate::config::{plain_line, Config, Digest};
use crate::edition::DigestView;
use crate::source::normalize;

/// A template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template file is missing or does not compile.
    #[error("cannot load templates from {dir}: {chain}")]
    Load {
        /// The template directory.
        dir: PathBuf,
        /// Tera's whole error chain (the real cause is usually at the end).
        chain: String,
    },
    /// A template failed while rendering.
    #[error("template {template} failed for digest `{digest}`: {chain}")]
    Render {
        /// The digest.
        digest: String,
        /// The template name.
        template: String,
        /// Tera's whole error chain.
        chain: String,
    },
    /// CSS inlining failed.
    #[error("cannot inline the CSS of digest `{digest}`: {message}")]
    Inline {
        /// The digest.
        digest: String,
        /// Why.
        message: String,
    },
}

/// The site as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct SiteInfo {
    /// Publication name.
    pub name: String,
    /// Public URL.
    pub base_url: String,
}

/// The digest as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct DigestInfo {
    /// Machine name.
    pub name: String,
    /// Human title.
    pub title: String,
}

/// The edition as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct EditionInfo {
    /// 1, 2, 3… (0 for test copies and previews of an edition not yet created).
    pub number: i64,
    /// RFC 3339 UTC time it was made for.
    pub date: String,
}

/// The recipient as templates see them.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberInfo {
    /// Display name, if known.
    pub name: Option<String>,
    /// Address.
    pub email: String,
    /// IANA time zone for dates.
    pub timezone: String,
}

/// Everything one message is rendered from.
#[derive(Debug, Clone, Serialize)]
pub struct MessageContext<'a> {
    /// The site.
    pub site: &'a SiteInfo,
    /// The digest.
    pub digest: &'a DigestInfo,
    /// The edition.
    pub edition: &'a EditionInfo,
    /// The recipient.
    pub subscriber: SubscriberInfo,
    /// Essays and reply threads.
    #[serde(flatten)]
    pub view: &'a DigestView,
    /// Where the recipient unsubscribes: the web page when `[web]` is configured, else
    /// a mailto: URL.
    pub unsubscribe_url: String,
    /// The recipient's preferences page, when `[web]` is configured.
    pub preferences_url: Option<String>,
    /// This edition's public page ("View in your browser"), for an archived digest.
    pub archive_url: Option<String>,
    /// True when rendering the public archive page: nothing about a recipient.
    pub public: bool,
}

/// One rendered message body.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Subject, one line.
    pub subject: String,
    /// HTML with inline styles and no `<style>` or `<script>`.
    pub html: String,
    /// Plain text.
    pub text: String,
}

/// Compiled templates for every digest of a config.
pub struct Renderer {
    tera: Tera,
    dir: PathBuf,
    inliner: css_inline::CSSInliner<'static>,
}

fn subject_name(digest: &str) -> String {
    format!("subject:{digest}")
}

impl Renderer {
    /// Loads and compiles the template sets and subject lines every digest uses.
    pub fn load(config: &Config) -> Result<Renderer, RenderError> {
        let dir = config.site.templates_dir.clone();
        let load_err = |e: &dyn std::error::Error| RenderError::Load {
            dir: dir.clone(),
            chain: crate::error_chain(e),
        };
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html", ".htm"]);
        register_helpers(&mut tera);
        let mut files: Vec<(PathBuf, Option<String>)> = Vec::new();
        let mut sets: Vec<&str> = config.digests.iter().map(|d| d.template.as_str()).collect();
        sets.sort();
        sets.dedup();
        for set in sets {
            let set_dir = dir.join(set);
            let entries = std::fs::read_dir(&set_dir).map_err(|e| load_err(&e))?;
            for entry in entries.flatten() {
                let path = entry.path();
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if path.is_file() && matches!(ext, "html" | "txt" | "css") {
                    let name = format!("{set}/{}", entry.file_name().to_string_lossy());
                    files.push((path, Some(name)));
                }
            }
        }
        files.sort();
        tera.add_template_files(files.iter().map(|(p, n)| (p.as_path(), n.as_deref())))
            .map_err(|e| load_err(&e))?;
        for d in &config.digests {
            tera.add_raw_template(&subject_name(&d.name), &d.subject)
                .map_err(|e| RenderError::Render {
                    digest: d.name.clone(),
                    template: format!("`digest.subject` of {}", d.name),
                    chain: crate::error_chain(&e),
                })?;
        }
        // Never fetch a stylesheet: not from the network, not from disk.
        let inliner = css_inline::CSSInliner::options()
            .load_remote_stylesheets(false)
            .keep_style_tags(false)
            .keep_link_tags(false)
            .build();
        Ok(Renderer { tera, dir, inliner })
    }

    /// The template directory these were loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Serialises a message context for Tera.
    pub fn context(digest: &Digest, ctx: &MessageContext<'_>) -> Result<Context, RenderError> {
        Context::from_serialize(ctx).map_err(|e| RenderError::Render {
            digest: digest.name.clone(),
            template: "(context)".into(),
            chain: crate::error_chain(&e),
        })
    }

    /// Runs the templates for one message without inlining CSS: the pre-flight check
    /// that every copy of an edition renders before the first is sent.
    pub fn check(&self, digest: &Digest, ctx: &MessageContext<'_>) -> Result<(), RenderError> {
        self.check_context(digest, &Self::context(digest, ctx)?)
    }

    /// [`Renderer::check`] for an already serialised context.
    pub fn check_context(&self, digest: &Digest, context: &Context) -> Result<(), RenderError> {
        for name in [
            subject_name(&digest.name),
            format!("{}/digest.html", digest.template),
            format!("{}/digest.txt", digest.template),
        ] {
            self.tera
                .render(&name, context)
                .map_err(|e| RenderError::Render {
                    digest: digest.name.clone(),
                    template: name.clone(),
                    chain: crate::error_chain(&e),
                })?;
        }
        Ok(())
    }

    /// Renders one message.
    pub fn render(
        &self,
        digest: &Digest,
        ctx: &MessageContext<'_>,
    ) -> Result<Rendered, RenderError> {
        self.render_context(digest, &Self::context(digest, ctx)?)
    }

    /// [`Renderer::render`] for an already serialised context.
    pub fn render_context(
        &self,
        digest: &Digest,
        context: &Context,
    ) -> Result<Rendered, RenderError> {
        self.render_with(digest, context, |html| self.inline(digest, html))
    }

    /// Renders one copy of an edition whose recipient-specific values are `values`,
    /// sharing CSS inlining with the edition's other copies through `memo` where that
    /// gives the same bytes (see [`InlineMemo`]).
    pub fn render_copy(
        &self,
        digest: &Digest,
        context: &Context,
        values: &[&str],
        memo: &InlineMemo,
    ) -> Result<Rendered, RenderError> {
        self.render_with(digest, context, |html| {
            memo.inline(html, values, |h| self.inline(digest, h))
        })
    }

    fn inline(&self, digest: &Digest, html: &str) -> Result<String, RenderError> {
        self.inliner.inline(html).map_err(|e| RenderError::Inline {
            digest: digest.name.clone(),
            message: e.to_string(),
        })
    }

    /// The subject line alone, for listings (the archive index and feed) that need no
    /// body.
    pub fn render_subject(
        &self,
        digest: &Digest,
        context: &Context,
    ) -> Result<String, RenderError> {
        let name = subject_name(&digest.name);
        self.tera
            .render(&name, context)
            .map(|s| plain_line(&s))
            .map_err(|e| RenderError::Render {
                digest: digest.name.clone(),
                template: name,
                chain: crate::error_chain(&e),
            })
    }

    fn render_with(
        &self,
        digest: &Digest,
        context: &Context,
        inline: impl Fn(&str) -> Result<String, RenderError>,
    ) -> Result<Rendered, RenderError> {
        let run = |name: &str| {
            self.tera
                .render(name, context)
                .map_err(|e| RenderError::Render {
                    digest: digest.name.clone(),
                    template: name.to_owned(),
                    chain: crate::error_chain(&e),
                })
        };
        let subject = plain_line(&run(&subject_name(&digest.name))?);
        let html_raw = run(&format!("{}/digest.html", digest.template))?;
        let text = run(&format!("{}/digest.txt", digest.template))?;
        Ok(Rendered {
            subject,
            html: inline(&html_raw)?,
            text: tidy_text_part(&text),
        })
    }
}

/// Trims trailing spaces and squeezes the blank-line runs that template tags leave.
fn tidy_text_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blanks = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blanks += 1;
            if blanks > 1 {
                continue;
            }
        } else {
            blanks = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_start_matches('\n').to_owned()
}

fn arg_str<'a>(args: &'a HashMap<String, Value>, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str)
}

fn arg_usize(args: &HashMap<String, Value>, key: &str, default: usize) -> usize {
    args.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(default)
}

fn register_helpers(tera: &mut Tera) {
    // `{{ essay.content_html | excerpt(words=40) }}`: the first words of some HTML, as text.
    tera.register_filter("excerpt", |v: &Value, args: &HashMap<String, Value>| {
        let html = v.as_str().unwrap_or_default();
        Ok(Value::String(normalize::excerpt(
            html,
            arg_usize(args, "words", 40),
        )))
    });
    // `{% if reply.content_html | word_count > 50 %}`: words in some HTML's text, to
    // offer "Read in full" only where an excerpt was cut.
    tera.register_filter("word_count", |v: &Value, _: &HashMap<String, Value>| {
        Ok(Value::from(normalize::word_count(
            v.as_str().unwrap_or_default(),
        )))
    });
    // `{{ essay.content_html | plaintext(width=72) }}`: HTML as wrapped plain text.
    tera.register_filter("plaintext", |v: &Value, args: &HashMap<String, Value>| {
        let html = v.as_str().unwrap_or_default();
        Ok(Value::String(normalize::html_to_text(
            html,
            arg_usize(args, "width", 72),
        )))
    });
    // `{{ text | wrap(width=72, indent="  ") }}`: word-wraps plain text.
    tera.register_filter("wrap", |v: &Value, args: &HashMap<String, Value>| {
        let text = v.as_str().unwrap_or_default();
        let indent = arg_str(args, "indent").unwrap_or("");
        Ok(Value::String(normalize::wrap(
            text,
            arg_usize(args, "width", 72),
            indent,
        )))
    });
    // `{{ "    " | repeat(n=reply.depth) }}`: a string n times, for indenting threads.
    tera.register_filter("repeat", |v: &Value, args: &HashMap<String, Value>| {
        let s = v.as_str().unwrap_or_default();
        Ok(Value::String(s.repeat(arg_usize(args, "n", 1).min(32))))
    });
    // `{{ essay.published_at | local_date(tz=subscriber.timezone, format="%e %B %Y") }}`.
    tera.register_filter("local_date", |v: &Value, args: &HashMap<String, Value>| {
        let s = v
            .as_str()
            .ok_or_else(|| tera::Error::msg("local_date expects a date string"))?;
        let t: DateTime<Utc> = DateTime::parse_from_rfc3339(s)
            .map_err(|e| {
                tera::Error::msg(format!("local_date: {s:?} is not an RFC 3339 date: {e}"))
            })?
            .with_timezone(&Utc);
        let tz: Tz = arg_str(args, "tz")
            .unwrap_or("UTC")
            .parse()
            .map_err(|_| tera::Error::msg("local_date: `tz` is not an IANA time zone"))?;
        let format = arg_str(args, "format").unwrap_or("%-d %B %Y");
        let mut out = String::new();
        use std::fmt::Write;
        write!(out, "{}", t.with_timezone(&tz).format(format))
            .map_err(|_| tera::Error::msg(format!("local_date: bad format {format:?}")))?;
        Ok(Value::String(out))
    });
    tera.register_function("get_env", |_: &HashMap<String, Value>| {
        Err(tera::Error::msg(
            "get_env is disabled in Gazette templates: the environment holds secrets",
        ))
    });
}
