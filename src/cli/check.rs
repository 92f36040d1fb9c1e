//! `gazette check`: the config, every digest's templates on a sample edition, and the
//! web pages, each problem reported with where it is.

use super::*;

/// `gazette check`: every problem found, and the exit code.
pub(super) fn check(config: &Config, json: bool, say: impl Fn(String)) -> anyhow::Result<u8> {
    let mut errors: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let renderer = match Renderer::load(config) {
        Ok(r) => r,
        Err(e) => {
            errors.push(e.to_string());
            return Ok(report(config, json, &errors, &warnings, say));
        }
    };
    let view = sample_view();
    let site = SiteInfo {
        name: config.site.name.clone(),
        base_url: config.site.base_url.clone(),
    };
    if config.web.is_some() {
        if let Err(e) = crate::web::check_pages(config) {
            errors.push(e.to_string());
        }
    }
    for d in &config.digests {
        let info = DigestInfo {
            name: d.name.clone(),
            title: d.title.clone(),
        };
        let edition = EditionInfo {
            number: 1,
            date: crate::store::ts(crate::time::now()),
        };
        let ctx = MessageContext {
            site: &site,
            digest: &info,
            edition: &edition,
            subscriber: SubscriberInfo {
                name: Some("Sample Reader".into()),
                email: "reader@example.org".into(),
                timezone: d.timezone.name().to_owned(),
            },
            view: &view,
            unsubscribe_url: match &config.web {
                Some(w) => format!("{}/unsubscribe/sample-token", w.base_url),
                None => crate::deliver::unsubscribe_mailto(
                    config.inbound_address(),
                    &d.name,
                    Some("unsubscribe.1.sample"),
                ),
            },
            preferences_url: config
                .web
                .as_ref()
                .map(|w| format!("{}/preferences/sample-token", w.base_url)),
            archive_url: None,
            public: false,
        };
        if let Err(e) = renderer.render(d, &ctx) {
            errors.push(e.to_string());
        }
    }
    if !errors.is_empty() {
        return Ok(report(config, json, &errors, &warnings, say));
    }
    // What Gmail and Yahoo require of bulk senders since February 2024: a DKIM signature
    // aligned with From, and a one-click unsubscribe (RFC 8058), which needs [web].
    if matches!(
        config.delivery.transport,
        crate::config::TransportConfig::Smtp(_)
    ) {
        if config.delivery.dkim.is_none() {
            warnings.push(format!(
                "{}: `delivery.transport = \"smtp\"` without `[delivery.dkim]`: Gmail and Yahoo reject or spam-folder bulk mail that is not DKIM-signed for the From domain. Add [delivery.dkim] (the README has a recipe for the key and its DNS record).",
                config.path.display()
            ));
        }
        if config.web.is_none() {
            warnings.push(format!(
                "{}: `delivery.transport = \"smtp\"` without `[web]`: messages carry only a mailto: unsubscribe, and Gmail and Yahoo require bulk senders to offer one-click unsubscribe (RFC 8058). Add [web] so List-Unsubscribe has an https link.",
                config.path.display()
            ));
        }
    }
    // Suppression wins over the file: say which listed addresses will not be mailed.
    if config.state.exists() {
        let store = Store::connect(&config.state)?;
        for sub in &config.subscribers {
            let email = sub.email.to_string();
            if let Some((status, since)) = store.subscriber_status(&email)? {
                if status != "active" {
                    warnings.push(format!(
                        "{} lists {email}, which is {status} (since {since}); it will not be mailed. Remove it from the file, or let them subscribe again themselves.",
                        config.path.display()
                    ));
                }
            }
        }
    }
    if !json {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        say(format!(
            "{} is valid: {}, {}, {}; templates in {} render.",
            config.path.display(),
            super::count(config.sources.len(), "source", "sources"),
            super::count(config.digests.len(), "digest", "digests"),
            super::count(config.subscribers.len(), "subscriber", "subscribers"),
            renderer.dir().display()
        ));
        return Ok(EXIT_OK);
    }
    Ok(report(config, json, &errors, &warnings, say))
}

/// Prints what `check` found (text on stderr, or one JSON object on stdout) and
/// returns the exit code: 1 with any error, else 0.
fn report(
    config: &Config,
    json: bool,
    errors: &[String],
    warnings: &[String],
    say: impl Fn(String),
) -> u8 {
    if json {
        say(check_json(
            &config.path.display().to_string(),
            errors,
            warnings,
            Some((
                config.sources.len(),
                config.digests.len(),
                config.subscribers.len(),
            )),
        ));
    } else {
        for e in errors {
            eprintln!("error: {e}");
        }
        for w in warnings {
            eprintln!("warning: {w}");
        }
    }
    if errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_ERROR
    }
}

/// `check --json`'s object: `valid`, `errors`, `warnings` and, once the config could be
/// read, what it holds.
pub(super) fn check_json(
    path: &str,
    errors: &[String],
    warnings: &[String],
    counts: Option<(usize, usize, usize)>,
) -> String {
    let mut v = serde_json::json!({
        "config": path,
        "valid": errors.is_empty(),
        "errors": errors,
        "warnings": warnings,
    });
    if let Some((sources, digests, subscribers)) = counts {
        v["sources"] = sources.into();
        v["digests"] = digests.into();
        v["subscribers"] = subscribers.into();
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Content that exercises every branch of a template: an essay, a thread with a nested
/// reply and a reader with no name.
fn sample_view() -> DigestView {
    let when = "2026-01-01T08:00:00.000000Z".to_owned();
    let essay = EssayView {
        id: 1,
        title: "A sample essay".into(),
        author: Some("Sample Author".into()),
        url: Some("https://example.org/sample/".into()),
        published_at: when.clone(),
        summary: Some("What a summary looks like.".into()),
        content_html: "<p>The first paragraph of a sample essay.</p>".into(),
        reply_count: 2,
        follow_url: None,
    };
    let reply = |author: Option<&str>, depth| ReplyView {
        author: author.map(str::to_owned),
        url: Some("https://example.org/sample/#reply-1".into()),
        published_at: when.clone(),
        content_html: "<p>A reader’s reply.</p>".into(),
        depth,
        answers_earlier: false,
    };
    DigestView {
        essays: vec![essay.clone()],
        threads: vec![ThreadView {
            essay,
            replies: vec![reply(Some("A Reader"), 0), reply(None, 1)],
            unfollow_url: None,
        }],
        reply_count: 2,
        more_essays: 0,
    }
}
