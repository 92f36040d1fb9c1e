//! The public archive of a digest with `archive = true`: every edition's non-personal
//! rendering at `/archive/{digest}/{number}`, an index at `/archive/{digest}/`, and an
//! Atom feed of editions at `/archive/{digest}/feed.atom`. Rendered from the same frozen
//! edition as the mail, through the digest's own templates with `public = true`: no
//! reader's name, address or link token is in the context at all.

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Answer, Shared};
use crate::edition::Selection;
use crate::render::{DigestInfo, EditionInfo, MessageContext, Rendered, SiteInfo, SubscriberInfo};
use crate::store::{EditionRow, Store, StoreError};

/// `<base>/archive/<digest>/` or, with a number, that edition's page.
pub fn archive_url(base: &str, digest: &str, number: Option<i64>) -> String {
    match number {
        Some(n) => format!("{}/archive/{digest}/{n}", base.trim_end_matches('/')),
        None => format!("{}/archive/{digest}/", base.trim_end_matches('/')),
    }
}

/// What to render of an edition for the public.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    /// The whole page.
    Page,
    /// Only the subject line (index and feed entries).
    Subject,
}

/// One edition rendered for the public (with `Part::Subject`, `html` and `text` are
/// empty: listings need no body, so none is rendered).
fn render(
    app: &super::App,
    store: &Store,
    digest: &crate::config::Digest,
    ed: &EditionRow,
    part: Part,
) -> Result<Option<Rendered>, StoreError> {
    let Some(renderer) = &app.renderer else {
        return Ok(None);
    };
    let (essays, replies) = store.edition_items(ed.id)?;
    let sel = Selection {
        essays,
        replies,
        more_essays: store.edition_more_essays(ed.id)?,
    };
    let view = crate::pipeline::edition_view(store, &sel, ed.window_to)?;
    let site = &app.config.site;
    let ctx = MessageContext {
        site: &SiteInfo {
            name: site.name.clone(),
            base_url: site.base_url.clone(),
        },
        digest: &DigestInfo {
            name: digest.name.clone(),
            title: digest.title.clone(),
        },
        edition: &EditionInfo {
            number: ed.number,
            date: crate::store::ts(ed.scheduled_for),
        },
        subscriber: SubscriberInfo {
            name: None,
            email: String::new(),
            timezone: digest.timezone.name().to_owned(),
        },
        view: &view,
        unsubscribe_url: String::new(),
        preferences_url: None,
        archive_url: None,
        public: true,
    };
    let mut context = match crate::render::Renderer::context(digest, &ctx) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(digest = %digest.name, edition = ed.number, error = %e, "An archive page could not be rendered.");
            return Ok(None);
        }
    };
    context.insert(
        "archive_index_url",
        &archive_url(app.links.base(), &digest.name, None),
    );
    let rendered = match part {
        Part::Page => renderer.render_context(digest, &context),
        Part::Subject => renderer
            .render_subject(digest, &context)
            .map(|subject| Rendered {
                subject,
                html: String::new(),
                text: String::new(),
            }),
    };
    match rendered {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            tracing::error!(digest = %digest.name, edition = ed.number, error = %e, "An archive page could not be rendered.");
            Ok(None)
        }
    }
}

fn archived<'a>(app: &'a super::App, name: &str) -> Option<&'a crate::config::Digest> {
    app.config
        .digests
        .iter()
        .find(|d| d.archive && d.name == name)
}

fn not_found(app: &Shared) -> Response {
    app.respond(app.notice(
        StatusCode::NOT_FOUND,
        "Not in the archive",
        &["There is no such edition in the archive.".into()],
    ))
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// `GET /archive/{digest}/` (and without the slash): every edition, newest first.
pub(super) async fn index(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let Some(digest) = archived(&app, &name).cloned() else {
        return not_found(&app);
    };
    app.archive_hits.fetch_add(1, Ordering::Relaxed);
    let a = app.clone();
    let d = digest.clone();
    let listed = app
        .db(move |s| {
            let mut out = Vec::new();
            for ed in s.archived_editions(&d.name)? {
                let subject = render(&a, s, &d, &ed, Part::Subject)?
                    .map(|r| r.subject)
                    .unwrap_or_default();
                out.push(serde_json::json!({
                    "number": ed.number,
                    "date": crate::store::ts(ed.scheduled_for),
                    "subject": subject,
                    "url": archive_url(a.links.base(), &d.name, Some(ed.number)),
                }));
            }
            Ok(out)
        })
        .await;
    let editions = match listed {
        Ok(e) => e,
        Err(answer) => return app.respond(answer),
    };
    let mut c = app.base_context();
    c.insert("title", &digest.title);
    c.insert("editions", &editions);
    c.insert(
        "feed_url",
        &format!(
            "{}feed.atom",
            archive_url(app.links.base(), &digest.name, None)
        ),
    );
    app.respond(Answer::Page(StatusCode::OK, "web/archive.html", c))
}

/// `GET /archive/{digest}/{number}` and `/archive/{digest}/feed.atom`.
pub(super) async fn item(
    State(app): State<Shared>,
    Path((name, item)): Path<(String, String)>,
) -> Response {
    let Some(digest) = archived(&app, &name).cloned() else {
        return not_found(&app);
    };
    if item == "feed.atom" {
        return feed(app, digest).await;
    }
    let Ok(number) = item.parse::<i64>() else {
        return not_found(&app);
    };
    app.archive_hits.fetch_add(1, Ordering::Relaxed);
    let a = app.clone();
    let rendered = app
        .db(move |s| match s.archived_edition(&digest.name, number)? {
            Some(ed) => render(&a, s, &digest, &ed, Part::Page),
            None => Ok(None),
        })
        .await;
    match rendered {
        Ok(Some(r)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            r.html,
        )
            .into_response(),
        Ok(None) => not_found(&app),
        Err(answer) => app.respond(answer),
    }
}

/// The Atom feed of a digest's editions (RFC 4287), newest first, each entry the
/// edition's page with its subject as the title.
async fn feed(app: Shared, digest: crate::config::Digest) -> Response {
    app.archive_hits.fetch_add(1, Ordering::Relaxed);
    let a = app.clone();
    let d = digest.clone();
    let entries = app
        .db(move |s| {
            let mut out = Vec::new();
            for ed in s.archived_editions(&d.name)?.into_iter().take(50) {
                let r = render(&a, s, &d, &ed, Part::Subject)?;
                out.push((ed, r));
            }
            Ok(out)
        })
        .await;
    let entries = match entries {
        Ok(e) => e,
        Err(answer) => return app.respond(answer),
    };
    let base = app.links.base();
    let index = archive_url(base, &digest.name, None);
    let updated = entries
        .first()
        .map(|(ed, _)| ed.created_at)
        .unwrap_or_else(crate::time::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <title>{}</title>\n<id>{}</id>\n<updated>{updated}</updated>\n\
         <link rel=\"self\" type=\"application/atom+xml\" href=\"{}feed.atom\"/>\n\
         <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n<author><name>{}</name></author>\n",
        escape(&format!("{} — {}", app.config.site.name, digest.title)),
        escape(&index),
        escape(&index),
        escape(&index),
        escape(&app.config.site.name),
    );
    for (ed, r) in &entries {
        let url = archive_url(base, &digest.name, Some(ed.number));
        let title = r
            .as_ref()
            .map_or_else(|| format!("No. {}", ed.number), |r| r.subject.clone());
        xml.push_str(&format!(
            "<entry>\n<title>{}</title>\n<id>{}</id>\n<link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n\
             <updated>{}</updated>\n<published>{}</published>\n</entry>\n",
            escape(&title),
            escape(&url),
            escape(&url),
            ed.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ed.scheduled_for.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ));
    }
    xml.push_str("</feed>\n");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        xml,
    )
        .into_response()
}
