//! Sign-up with double opt-in: the form, its rate limits, the confirmation mail and the
//! single-use confirmation link.

use super::*;

fn subscribe_form(app: &App, error: Option<&str>, email: &str, name: &str) -> Answer {
    let mut c = app.base_context();
    c.insert("error", &error);
    c.insert("email", email);
    c.insert("name", name);
    c.insert("action", &format!("{}/subscribe", app.links.base()));
    c.insert("digests", &digest_choices(app, &|_| true));
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Answer::Page(status, "web/subscribe.html", c)
}

pub(super) async fn subscribe_page(State(app): State<Shared>) -> Response {
    app.respond(subscribe_form(&app, None, "", ""))
}

/// The sign-up form. Whatever the address's state, a valid request gets the same answer
/// ("check your inbox"), so the form cannot tell anyone who is subscribed.
pub(super) async fn subscribe(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let ip = app.client_ip(peer, &headers);
    app.per_ip.retain_recent();
    if app.per_ip.check_key(&ip).is_err() {
        tracing::warn!(%ip, "Sign-up refused: too many from this address.");
        return app.respond(app.notice(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            &["Please try again in an hour.".into()],
        ));
    }
    let field = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (raw_email, raw_name) = (field("email"), field("name"));
    let parsed = crate::config::parse_address(&raw_email);
    let mailbox = parsed.as_ref().ok().map(crate::config::canonical_mailbox);
    let email = match parsed {
        Ok(a) => a.to_string(),
        Err(_) => {
            let msg = "That does not look like an e-mail address; please check it.";
            return app.respond(subscribe_form(&app, Some(msg), &raw_email, &raw_name));
        }
    };
    let name: String = plain_line(&raw_name).chars().take(MAX_FORM_NAME).collect();
    let ticked: HashSet<&str> = fields
        .iter()
        .filter(|(n, _)| n == "digest")
        .map(|(_, v)| v.as_str())
        .collect();
    let digests: Vec<String> = app
        .config
        .digests
        .iter()
        .filter(|d| ticked.contains(d.name.as_str()))
        .map(|d| d.name.clone())
        .collect();
    if digests.is_empty() {
        let msg = "Choose at least one of the digests.";
        return app.respond(subscribe_form(&app, Some(msg), &raw_email, &raw_name));
    }
    let zone = Some(field("timezone")).filter(|z| z.parse::<chrono_tz::Tz>().is_ok());
    let check_inbox = app.notice(
        StatusCode::OK,
        "Check your inbox",
        &[format!("If {email} can receive mail, a message with a confirmation link is on its way. Your subscription starts when you follow it.")],
    );
    app.per_address.retain_recent();
    // Keyed on the mailbox, so `ada+1@`, `a.da@` and `ADA@` share one allowance.
    if app
        .per_address
        .check_key(&mailbox.unwrap_or_else(|| email.to_lowercase()))
        .is_err()
    {
        // Same answer as a success: no mail-bombing an address, and nothing learnt.
        tracing::warn!("Sign-up not mailed: too many confirmations asked for one address.");
        return app.respond(check_inbox);
    }
    let now = crate::time::now();
    let (e, n, z, d) = (email.clone(), name.clone(), zone.clone(), digests.clone());
    let signup = match app
        .db(move |s| {
            s.create_signup(
                &e,
                Some(n.as_str()).filter(|n| !n.is_empty()),
                z.as_deref(),
                &d,
                now,
            )
        })
        .await
    {
        Ok(id) => id,
        Err(a) => return app.respond(a),
    };
    // Mailed in the background: the answer does not wait for (or reveal) the relay.
    let mailer = Arc::clone(&app);
    tokio::spawn(async move {
        send_confirmation(&mailer, signup, &email, &name, &digests).await;
    });
    app.respond(check_inbox)
}

async fn send_confirmation(app: &App, signup: i64, email: &str, name: &str, digests: &[String]) {
    let titles: Vec<String> = digests.iter().map(|d| app.digest_title(d)).collect();
    let mut c = app.base_context();
    // The address is not confirmed yet: nothing a stranger typed (the name) goes into
    // the message or its To header, so the form cannot relay text to a third party.
    let _ = name;
    c.insert("name", &None::<String>);
    c.insert("digests", &titles);
    c.insert("confirm_url", &app.links.confirm(signup));
    let bodies = app
        .pages
        .render("web/confirm_email.txt", &c)
        .and_then(|t| Ok((t, app.pages.render("web/confirm_email.html", &c)?)));
    let (text, html) = match bodies {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %crate::error_chain(&e), "The confirmation template failed; nothing was sent.");
            return;
        }
    };
    let subject = format!("Confirm your subscription to {}", app.config.site.name);
    let key = format!("confirm-{signup}");
    let built = deliver::build_notice(Notice {
        site: &app.config.site,
        email,
        name: None,
        subject: &subject,
        text,
        html,
        key: &key,
        date: crate::time::now(),
        dkim: app.dkim.as_ref(),
    });
    let message = match built {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "The confirmation message could not be built.");
            return;
        }
    };
    match app.transport.send(&message).await {
        Ok(reply) => tracing::info!(signup, %reply, "Confirmation sent."),
        Err(e) => {
            tracing::error!(signup, error = %e, "The confirmation could not be sent; the reader can sign up again.")
        }
    }
}

async fn confirm_view(app: &Shared, token: &str, act: bool) -> Answer {
    let Some(claims) = app.links.signer().verify(token, Purpose::Confirm) else {
        return app.invalid_link();
    };
    let id = claims.subscriber;
    let signup = match app.db(move |s| s.signup(id)).await {
        Ok(Some(s)) => s,
        Ok(None) => return app.invalid_link(),
        Err(a) => return a,
    };
    let now = crate::time::now();
    if signup.confirmed_at.is_none() && now - signup.created_at > CONFIRM_FOR {
        return app.notice(
            StatusCode::GONE,
            "This link has expired",
            &[format!(
                "Confirmation links work for {} days. Please sign up again.",
                CONFIRM_FOR.num_days()
            )],
        );
    }
    if signup.confirmed_at.is_some() {
        // Single use: a replayed link (a forwarded mail, a scanner) changes nothing.
        return app.notice(
            StatusCode::OK,
            "This link was already used",
            &["This sign-up is confirmed. To change what you receive, use the preferences link in any digest.".to_owned()],
        );
    }
    let titles: Vec<String> = signup.digests.iter().map(|d| app.digest_title(d)).collect();
    if !act {
        let mut c = app.base_context();
        c.insert("email", &signup.email);
        c.insert("digests", &titles);
        return Answer::Page(StatusCode::OK, "web/confirm.html", c);
    }
    let subscriber = match app.db(move |s| s.confirm_signup(id, now)).await {
        Ok(Some(sub)) => sub,
        Ok(None) => return app.invalid_link(),
        Err(a) => return a,
    };
    tracing::info!(signup = id, subscriber, "Sign-up confirmed.");
    let first = signup.digests.first().cloned().unwrap_or_default();
    let mut c = app.base_context();
    c.insert("heading", "You are subscribed");
    c.insert(
        "lines",
        &[format!(
            "{} will receive {} from {}.",
            signup.email,
            titles.join(", "),
            app.config.site.name
        )],
    );
    c.insert(
        "preferences_url",
        &Some(app.links.preferences(subscriber, &first)),
    );
    Answer::Page(StatusCode::OK, "web/notice.html", c)
}

pub(super) async fn confirm_page(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    let answer = confirm_view(&app, &token, false).await;
    app.respond(answer)
}

pub(super) async fn confirm(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    let answer = confirm_view(&app, &token, true).await;
    app.respond(answer)
}
