//! Following an essay's conversation from a link in a copy: `GET /follow/{token}` and
//! `GET /unfollow/{token}` show a page with a button, and only its POST changes anything
//! (link scanners follow every URL). The token names the reader and the essay.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Answer, Shared};
use crate::token::Purpose;

/// The essay row id a follow token names.
fn essay_of(claim: &str) -> Option<i64> {
    claim.strip_prefix("essay:")?.parse().ok()
}

async fn view(app: &Shared, token: &str, stop: bool, act: bool) -> Answer {
    let Some(claims) = app.links.signer().verify(token, Purpose::Follow) else {
        return app.invalid_link();
    };
    let Some(essay) = essay_of(&claims.digest) else {
        return app.invalid_link();
    };
    let id = claims.subscriber;
    let now = crate::time::now();
    let result = app
        .db(move |s| {
            let (Some(profile), Some(e)) = (s.profile(id)?, s.essay_ref(essay)?) else {
                return Ok(None);
            };
            if act && profile.status == "active" {
                if stop {
                    s.unfollow(id, essay)?;
                } else {
                    s.follow(id, essay, now)?;
                }
            }
            let following = s.follows_essay(id, essay)?;
            Ok(Some((profile, e, following)))
        })
        .await;
    let (profile, e, following) = match result {
        Ok(Some(found)) => found,
        Ok(None) => return app.invalid_link(),
        Err(a) => return a,
    };
    if act {
        tracing::info!(
            subscriber = id,
            essay,
            following,
            "Follow changed through the web endpoint."
        );
    }
    let digest = app
        .config
        .digests
        .iter()
        .find(|d| profile.digests.contains(&d.name))
        .map_or_else(String::new, |d| d.name.clone());
    let mut c = app.base_context();
    c.insert("title", &e.title);
    c.insert("url", &e.url.filter(|u| crate::source::is_web_url(u)));
    c.insert("email", &profile.email);
    c.insert("following", &following);
    c.insert("stop", &stop);
    c.insert("done", &act);
    c.insert("preferences_url", &app.links.preferences(id, &digest));
    Answer::Page(StatusCode::OK, "web/follow.html", c)
}

/// `GET /follow/{token}`: the page with the "Follow the conversation" button.
pub(super) async fn follow_page(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    let a = view(&app, &token, false, false).await;
    app.respond(a)
}

/// `POST /follow/{token}`: follows the essay.
pub(super) async fn follow_now(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    let a = view(&app, &token, false, true).await;
    app.respond(a)
}

/// `GET /unfollow/{token}`: the page with the "Stop following" button.
pub(super) async fn unfollow_page(
    State(app): State<Shared>,
    Path(token): Path<String>,
) -> Response {
    let a = view(&app, &token, true, false).await;
    app.respond(a)
}

/// `POST /unfollow/{token}`: stops following the essay.
pub(super) async fn unfollow_now(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    let a = view(&app, &token, true, true).await;
    app.respond(a)
}
