//! A reader's own choices through signed links: one-click unsubscribe (RFC 8058) and its
//! page, and the preferences page (digests, time zone, follows, leaving everything).

use super::*;

/// The unsubscribe page: says what the button will do. Changes nothing.
pub(super) async fn unsubscribe_page(
    State(app): State<Shared>,
    Path(token): Path<String>,
) -> Response {
    let answer = match app.links.signer().verify(&token, Purpose::Unsubscribe) {
        Some(claims) => unsubscribe_view(&app, claims, false).await,
        None => app.invalid_link(),
    };
    app.respond(answer)
}

/// RFC 8058 one-click: a POST with `List-Unsubscribe=One-Click` (the page's button sends
/// the same) leaves the digest at once. Idempotent.
pub(super) async fn unsubscribe_now(
    State(app): State<Shared>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body);
    // Form-encoded (`List-Unsubscribe=One-Click`) or multipart, as RFC 8058 allows.
    let one_click = body.contains("List-Unsubscribe") && body.contains("One-Click");
    let answer = match app.links.signer().verify(&token, Purpose::Unsubscribe) {
        None => app.invalid_link(),
        Some(_) if !one_click => app.notice(
            StatusCode::BAD_REQUEST,
            "Nothing was changed",
            &["An unsubscribe request must carry List-Unsubscribe=One-Click; use the button on this page.".into()],
        ),
        Some(claims) => unsubscribe_view(&app, claims, true).await,
    };
    app.respond(answer)
}

async fn unsubscribe_view(app: &Shared, claims: Claims, act: bool) -> Answer {
    let (id, digest) = (claims.subscriber, claims.digest.clone());
    let now = crate::time::now();
    let result = app
        .db(move |s| {
            let Some(before) = s.profile(id)? else {
                return Ok(None);
            };
            if act {
                s.leave_digest(id, &digest, now)?;
            }
            Ok(Some(before))
        })
        .await;
    let profile = match result {
        Ok(Some(p)) => p,
        Ok(None) => return app.invalid_link(),
        Err(a) => return a,
    };
    let title = app.digest_title(&claims.digest);
    let preferences = app.links.preferences(id, &claims.digest);
    if act {
        tracing::info!(subscriber = id, digest = %claims.digest, "Unsubscribed through the web endpoint.");
        let mut c = app.base_context();
        c.insert("heading", "You are unsubscribed");
        c.insert(
            "lines",
            &[format!(
                "{} will no longer receive “{title}” from {}.",
                profile.email, app.config.site.name
            )],
        );
        c.insert("preferences_url", &Some(preferences));
        return Answer::Page(StatusCode::OK, "web/notice.html", c);
    }
    let mut c = app.base_context();
    c.insert("email", &profile.email);
    c.insert("digest", &title);
    c.insert(
        "subscribed",
        &(profile.status == "active" && profile.digests.contains(&claims.digest)),
    );
    c.insert("preferences_url", &preferences);
    Answer::Page(StatusCode::OK, "web/unsubscribe.html", c)
}

pub(super) async fn preferences_page(
    State(app): State<Shared>,
    Path(token): Path<String>,
) -> Response {
    let answer = preferences_view(&app, &token, None, false).await;
    app.respond(answer)
}

async fn preferences_view(app: &Shared, token: &str, error: Option<String>, saved: bool) -> Answer {
    let Some(claims) = app.links.signer().verify(token, Purpose::Preferences) else {
        return app.invalid_link();
    };
    let id = claims.subscriber;
    let found = app
        .db(move |s| {
            let Some(p) = s.profile(id)? else {
                return Ok(None);
            };
            Ok(Some((p, s.follows_of(id)?, s.auto_follow_choice(id)?)))
        })
        .await;
    let (profile, followed, auto_choice) = match found {
        Ok(Some(p)) => p,
        Ok(None) => return app.invalid_link(),
        Err(a) => return a,
    };
    let mut c = app.base_context();
    let follows: Vec<serde_json::Value> = followed
        .iter()
        .map(|f| {
            serde_json::json!({
                "title": f.title,
                "url": f.url.as_deref().filter(|u| crate::source::is_web_url(u)),
                "unfollow_url": app.links.unfollow(id, f.essay_id),
            })
        })
        .collect();
    c.insert("follows", &follows);
    // Their own choice, else what their digests do for readers who made none.
    let auto_default = app
        .config
        .digests
        .iter()
        .any(|d| d.auto_follow && profile.digests.contains(&d.name));
    c.insert("auto_follow", &auto_choice.unwrap_or(auto_default));
    c.insert("email", &profile.email);
    c.insert("name", &profile.name);
    c.insert("active", &(profile.status == "active"));
    c.insert(
        "digests",
        &digest_choices(app, &|d| profile.digests.iter().any(|x| x == d)),
    );
    c.insert("timezone", &profile.timezone.unwrap_or_default());
    c.insert("error", &error);
    c.insert("saved", &saved);
    c.insert("subscribe_url", &format!("{}/subscribe", app.links.base()));
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Answer::Page(status, "web/preferences.html", c)
}

pub(super) async fn preferences_save(
    State(app): State<Shared>,
    Path(token): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let Some(claims) = app.links.signer().verify(&token, Purpose::Preferences) else {
        return app.respond(app.invalid_link());
    };
    let id = claims.subscriber;
    let field = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
    };
    let now = crate::time::now();
    if field("action").as_deref() == Some("leave") {
        let answer = match app.db(move |s| s.unsubscribe_id(id, now)).await {
            Ok(true) => {
                tracing::info!(
                    subscriber = id,
                    "Unsubscribed from everything through the web endpoint."
                );
                app.notice(
                    StatusCode::OK,
                    "You are unsubscribed",
                    &[format!(
                        "You will receive nothing more from {}.",
                        app.config.site.name
                    )],
                )
            }
            Ok(false) => app.invalid_link(),
            Err(a) => a,
        };
        return app.respond(answer);
    }
    let zone = field("timezone").filter(|z| !z.is_empty());
    if let Some(z) = &zone {
        if z.parse::<chrono_tz::Tz>().is_err() {
            let answer = preferences_view(
                &app,
                &token,
                Some(format!(
                    "“{z}” is not a time zone; write a name like Europe/Paris or America/Chicago."
                )),
                false,
            )
            .await;
            return app.respond(answer);
        }
    }
    let ticked: HashSet<&str> = fields
        .iter()
        .filter(|(n, _)| n == "digest")
        .map(|(_, v)| v.as_str())
        .collect();
    let choices: Vec<(String, bool)> = app
        .config
        .digests
        .iter()
        .map(|d| (d.name.clone(), ticked.contains(d.name.as_str())))
        .collect();
    let auto_follow = field("auto_follow").is_some();
    let applied = app
        .db(move |s| {
            s.set_auto_follow(id, auto_follow)?;
            s.set_preferences(id, &choices, zone.as_deref(), now)
        })
        .await;
    let answer = match applied {
        Ok(_) => preferences_view(&app, &token, None, true).await,
        Err(a) => a,
    };
    app.respond(answer)
}
