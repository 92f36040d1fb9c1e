//! The web endpoint (axum): sign-up with double opt-in, one-click unsubscribe (RFC 8058),
//! the preferences page, `/healthz` and `/metrics`. Served by `gazette serve` and inside
//! `gazette run` when `[web]` is configured.
//!
//! Every link carries a signed token ([`crate::token`]); a GET never changes anything, so
//! link scanners that follow every URL in a message unsubscribe nobody. Pages are Tera
//! templates (`templates/web/`, with built-in defaults) with every value escaped.

mod archive;
mod follows;
pub mod listen;
mod metrics;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tera::{Context, Tera};

use crate::config::{plain_line, Config, WebSettings};
use crate::deliver::{self, Notice, Transport};
use crate::store::{Store, StoreError};
use crate::token::{Claims, Links, Purpose, TokenError};

pub use archive::archive_url;
pub use metrics::render as render_metrics;

/// Longest name kept from the sign-up form, in characters.
const MAX_FORM_NAME: usize = 100;

/// A confirmation link is good for this long.
const CONFIRM_FOR: chrono::Duration = chrono::Duration::days(7);

/// The web endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// `[web]` is missing from the config.
    #[error("{0} has no [web] table; add one (e.g. `[web]` with `listen = \"127.0.0.1:8080\"`) to serve the endpoint")]
    NotConfigured(PathBuf),
    /// The address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}; change `[web] listen` or stop what uses it")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token secret could not be used.
    #[error("{0} (set in `[web]`: `secret_file` or `secret_env`)")]
    Token(#[from] TokenError),
    /// A page template failed to load.
    #[error("cannot load the web page templates from {dir}: {chain}")]
    Templates {
        /// Where they were looked for.
        dir: PathBuf,
        /// What went wrong.
        chain: String,
    },
    /// The mail transport could not be set up.
    #[error(transparent)]
    Transport(#[from] deliver::SendError),
    /// The DKIM key could not be used.
    #[error("cannot sign with the DKIM key: {0}")]
    Dkim(String),
    /// Serving failed.
    #[error("the web endpoint stopped: {0}")]
    Serve(std::io::Error),
}

/// The pages, as built in; a file of the same name in `templates/web/` replaces one.
const PAGES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/web/layout.html"),
    ),
    (
        "notice.html",
        include_str!("../../templates/web/notice.html"),
    ),
    (
        "unsubscribe.html",
        include_str!("../../templates/web/unsubscribe.html"),
    ),
    (
        "preferences.html",
        include_str!("../../templates/web/preferences.html"),
    ),
    (
        "subscribe.html",
        include_str!("../../templates/web/subscribe.html"),
    ),
    (
        "follow.html",
        include_str!("../../templates/web/follow.html"),
    ),
    (
        "archive.html",
        include_str!("../../templates/web/archive.html"),
    ),
    (
        "confirm.html",
        include_str!("../../templates/web/confirm.html"),
    ),
    (
        "confirm_email.txt",
        include_str!("../../templates/web/confirm_email.txt"),
    ),
    (
        "confirm_email.html",
        include_str!("../../templates/web/confirm_email.html"),
    ),
];

/// Loads the page templates: `<templates>/web/<name>` where present, else the built-in.
pub fn load_pages(templates_dir: &std::path::Path) -> Result<Tera, WebError> {
    let dir = templates_dir.join("web");
    let fail = |e: &dyn std::error::Error| WebError::Templates {
        dir: dir.clone(),
        chain: crate::error_chain(e),
    };
    let mut tera = Tera::default();
    tera.autoescape_on(vec![".html"]);
    let mut pages = Vec::new();
    for (name, builtin) in PAGES {
        let text = match std::fs::read_to_string(dir.join(name)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (*builtin).to_owned(),
            Err(e) => return Err(fail(&e)),
        };
        pages.push((format!("web/{name}"), text));
    }
    tera.add_raw_templates(pages).map_err(|e| fail(&e))?;
    // As in the digest templates: the environment holds the secrets.
    tera.register_function(
        "get_env",
        |_: &std::collections::HashMap<String, tera::Value>| {
            Err(tera::Error::msg(
                "get_env is disabled in Gazette templates: the environment holds secrets",
            ))
        },
    );
    Ok(tera)
}

/// Loads the page templates and renders each with sample values, so `gazette check`
/// finds a broken page before a reader does.
pub fn check_pages(config: &Config) -> Result<(), WebError> {
    let dir = config.site.templates_dir.join("web");
    let pages = load_pages(&config.site.templates_dir)?;
    let mut c = Context::new();
    c.insert(
        "site",
        &serde_json::json!({"name": config.site.name, "base_url": config.site.base_url}),
    );
    let digests: Vec<serde_json::Value> = config
        .digests
        .iter()
        .map(|d| serde_json::json!({"name": d.name, "title": d.title, "chosen": true}))
        .collect();
    let titles: Vec<&str> = config.digests.iter().map(|d| d.title.as_str()).collect();
    c.insert("heading", "Sample");
    c.insert("lines", &["A sample line."]);
    c.insert("preferences_url", "https://example.org/preferences/sample");
    c.insert("subscribe_url", "https://example.org/subscribe");
    c.insert("confirm_url", "https://example.org/confirm/sample");
    c.insert("action", "https://example.org/subscribe");
    c.insert("email", "reader@example.org");
    c.insert("name", "Sample Reader");
    c.insert("timezone", "Europe/Paris");
    c.insert("digest", "Sample digest");
    c.insert("subscribed", &true);
    c.insert("active", &true);
    c.insert("saved", &false);
    c.insert("error", &Option::<String>::None);
    c.insert(
        "follows",
        &[serde_json::json!({"title": "A sample essay", "url": "https://example.org/essay/", "unfollow_url": "https://example.org/unfollow/sample"})],
    );
    c.insert("auto_follow", &false);
    c.insert("title", "A sample essay");
    c.insert("url", "https://example.org/essay/");
    c.insert("following", &false);
    c.insert("stop", &false);
    c.insert("done", &false);
    c.insert(
        "editions",
        &[serde_json::json!({"number": 1, "date": "2026-01-01T08:00:00.000000Z", "subject": "A sample subject", "url": "https://example.org/archive/d/1"})],
    );
    c.insert("feed_url", "https://example.org/archive/d/feed.atom");
    for (name, _) in PAGES {
        if *name == "layout.html" {
            continue;
        }
        let mut page = c.clone();
        if name.starts_with("confirm") {
            page.insert("digests", &titles);
        } else {
            page.insert("digests", &digests);
        }
        pages
            .render(&format!("web/{name}"), &page)
            .map_err(|e| WebError::Templates {
                dir: dir.clone(),
                chain: crate::error_chain(&e),
            })?;
    }
    Ok(())
}

/// What every request handler shares.
struct App {
    config: Config,
    web: WebSettings,
    links: Links,
    pages: Tera,
    store: Arc<Mutex<Store>>,
    transport: Transport,
    dkim: Option<lettre::message::dkim::DkimConfig>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_address: DefaultKeyedRateLimiter<String>,
    behind_proxy: bool,
    /// The digest templates, when a digest has a public archive.
    renderer: Option<crate::render::Renderer>,
    /// Archive pages and feeds served since start (for `/metrics`).
    archive_hits: std::sync::atomic::AtomicU64,
}

type Shared = Arc<App>;

/// A page or a plain-text answer.
enum Answer {
    Page(StatusCode, &'static str, Context),
    Text(StatusCode, &'static str, String),
}

impl App {
    fn base_context(&self) -> Context {
        let mut c = Context::new();
        c.insert(
            "site",
            &serde_json::json!({
                "name": self.config.site.name,
                "base_url": self.config.site.base_url,
            }),
        );
        c
    }

    fn notice(&self, status: StatusCode, heading: &str, lines: &[String]) -> Answer {
        let mut c = self.base_context();
        c.insert("heading", heading);
        c.insert("lines", lines);
        c.insert("preferences_url", &Option::<String>::None);
        Answer::Page(status, "web/notice.html", c)
    }

    fn invalid_link(&self) -> Answer {
        self.notice(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            &["It may have been cut short by your mail program. Open it from the message again, or copy the whole address into your browser.".into()],
        )
    }

    fn respond(&self, a: Answer) -> Response {
        match a {
            Answer::Text(status, mime, body) => {
                (status, [(header::CONTENT_TYPE, mime)], body).into_response()
            }
            Answer::Page(status, name, ctx) => match self.pages.render(name, &ctx) {
                Ok(html) => (
                    status,
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                    html,
                )
                    .into_response(),
                Err(e) => {
                    tracing::error!(page = name, error = %crate::error_chain(&e), "A page template failed.");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "The page could not be shown; the error is in the server's log.",
                    )
                        .into_response()
                }
            },
        }
    }

    /// Runs store work off the async threads.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Answer> {
        let store = Arc::clone(&self.store);
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await;
        match joined {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "The database failed while answering a request.");
                Err(self.unavailable())
            }
            Err(e) => {
                tracing::error!(error = %e, "A database task failed.");
                Err(self.unavailable())
            }
        }
    }

    fn unavailable(&self) -> Answer {
        self.notice(
            StatusCode::SERVICE_UNAVAILABLE,
            "Something went wrong",
            &["Nothing was changed. Please try again in a few minutes.".into()],
        )
    }

    fn digest_title(&self, name: &str) -> String {
        self.config
            .digests
            .iter()
            .find(|d| d.name == name)
            .map_or_else(|| name.to_owned(), |d| d.title.clone())
    }

    fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.behind_proxy {
            // The proxy appends the address it saw last; earlier entries are the
            // client's own claims.
            if let Some(ip) = headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok())
            {
                return ip;
            }
        }
        peer.ip()
    }
}

/// The router, for `serve` and for tests that drive it in-process.
fn router(app: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe_now),
        )
        .route(
            "/preferences/{token}",
            get(preferences_page).post(preferences_save),
        )
        .route("/subscribe", get(subscribe_page).post(subscribe))
        .route("/confirm/{token}", get(confirm_page).post(confirm))
        .route(
            "/follow/{token}",
            get(follows::follow_page).post(follows::follow_now),
        )
        .route(
            "/unfollow/{token}",
            get(follows::unfollow_page).post(follows::unfollow_now),
        )
        .route("/archive/{digest}", get(archive::index))
        .route("/archive/{digest}/", get(archive::index))
        .route("/archive/{digest}/{item}", get(archive::item))
        // The forms are a few fields; nothing a browser sends them comes near this.
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// Headers every page carries: no scripts or outside resources (the pages have none),
/// no framing (clickjacking a one-click button), no MIME sniffing, and no Referer, since
/// the page addresses carry signed tokens.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::header::{self, HeaderValue};
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Binds `[web] listen` and serves until `stop` resolves. Logs the address it listens on.
pub async fn serve(
    config: &Config,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let listener = bind(config).await?;
    serve_on(config, listener, stop).await
}

/// Binds the configured address (separate from [`serve_on`] so that `gazette run` fails
/// at once when the port is taken).
pub async fn bind(config: &Config) -> Result<tokio::net::TcpListener, WebError> {
    let web = config
        .web
        .as_ref()
        .ok_or_else(|| WebError::NotConfigured(config.path.clone()))?;
    tokio::net::TcpListener::bind(web.listen)
        .await
        .map_err(|source| WebError::Bind {
            addr: web.listen,
            source,
        })
}

/// Serves on a bound listener until `stop` resolves.
pub async fn serve_on(
    config: &Config,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let web = config
        .web
        .clone()
        .ok_or_else(|| WebError::NotConfigured(config.path.clone()))?;
    let links = Links::load(&web)?;
    let pages = load_pages(&config.site.templates_dir)?;
    let store = Store::open(&config.state_path)?;
    let transport = Transport::from_config(&config.delivery.transport)?;
    let dkim = config
        .delivery
        .dkim
        .as_ref()
        .map(deliver::dkim_signer)
        .transpose()
        .map_err(WebError::Dkim)?;
    let renderer = if config.digests.iter().any(|d| d.archive) {
        Some(
            crate::render::Renderer::load(config).map_err(|e| WebError::Templates {
                dir: config.site.templates_dir.clone(),
                chain: crate::error_chain(&e),
            })?,
        )
    } else {
        None
    };
    let per = |n: u32| Quota::per_hour(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
    let app = Arc::new(App {
        config: config.clone(),
        links,
        pages,
        store: Arc::new(Mutex::new(store)),
        transport,
        dkim,
        per_ip: RateLimiter::keyed(per(web.subscribe_per_ip)),
        per_address: RateLimiter::keyed(per(web.subscribe_per_address)),
        behind_proxy: web.behind_proxy,
        renderer,
        archive_hits: std::sync::atomic::AtomicU64::new(0),
        web,
    });

    let limits = listen::Limits {
        max_connections: app.web.max_connections,
        ..listen::Limits::default()
    };
    // The operator's own address for metrics, off the public one; it stops with it.
    let (stopped, _) = tokio::sync::watch::channel(false);
    if let Some(addr) = app.web.metrics_listen {
        let metrics_listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| WebError::Bind { addr, source })?;
        let at = metrics_listener.local_addr().map_err(WebError::Serve)?;
        tracing::info!(
            "Metrics on http://{at}/metrics (no token asked: keep this address private)."
        );
        let routes = Router::new()
            .route("/metrics", get(open_metrics))
            .route("/healthz", get(healthz))
            .layer(axum::middleware::map_response(security_headers))
            .with_state(app.clone());
        let mut done = stopped.subscribe();
        tokio::spawn(listen::serve(
            metrics_listener,
            routes,
            limits,
            async move {
                let _ = done.wait_for(|d| *d).await;
            },
        ));
    }
    let local = listener.local_addr().map_err(WebError::Serve)?;
    tracing::info!(
        "Web endpoint listening on http://{local} (public address {}).",
        app.web.base_url
    );
    listen::serve(listener, router(app), limits, stop).await;
    let _ = stopped.send(true);
    Ok(())
}

async fn healthz(State(app): State<Shared>) -> Response {
    let answer = match app
        .db(|s| s.owed().map(|_| ()))
        .await
        .map(|()| Answer::Text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()))
    {
        Ok(a) | Err(a) => a,
    };
    app.respond(answer)
}

/// `/metrics` on the public listener: only with `metrics_token_env` set and its bearer
/// token given (the counts are the operator's, not the readers').
async fn metrics(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let Some(token) = &app.web.metrics_token else {
        return app.respond(Answer::Text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "Not found. Metrics are served on `web.metrics_listen`, or here with `web.metrics_token_env`.\n".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given.trim().as_bytes(), token.expose().as_bytes()) {
        let mut r = app.respond(Answer::Text(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "Metrics need `Authorization: Bearer <token>` (the value of `web.metrics_token_env`).\n".into(),
        ));
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"gazette-metrics\""),
        );
        return r;
    }
    open_metrics(State(app)).await
}

/// Compares without stopping at the first difference, so timing tells nothing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `/metrics` where no token is asked: the `metrics_listen` address.
async fn open_metrics(State(app): State<Shared>) -> Response {
    let answer = match app.db(|s| s.figures()).await {
        Ok(mut f) => Answer::Text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            {
                f.archive_hits = app.archive_hits.load(std::sync::atomic::Ordering::Relaxed);
                metrics::render(&f)
            },
        ),
        Err(a) => a,
    };
    app.respond(answer)
}

/// The unsubscribe page: says what the button will do. Changes nothing.
async fn unsubscribe_page(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    let answer = match app.links.signer().verify(&token, Purpose::Unsubscribe) {
        Some(claims) => unsubscribe_view(&app, claims, false).await,
        None => app.invalid_link(),
    };
    app.respond(answer)
}

/// RFC 8058 one-click: a POST with `List-Unsubscribe=One-Click` (the page's button sends
/// the same) leaves the digest at once. Idempotent.
async fn unsubscribe_now(
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

fn digest_choices(app: &App, chosen: &dyn Fn(&str) -> bool) -> Vec<serde_json::Value> {
    app.config
        .digests
        .iter()
        .map(|d| serde_json::json!({"name": d.name, "title": d.title, "chosen": chosen(&d.name)}))
        .collect()
}

async fn preferences_page(State(app): State<Shared>, Path(token): Path<String>) -> Response {
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

async fn preferences_save(
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

async fn subscribe_page(State(app): State<Shared>) -> Response {
    app.respond(subscribe_form(&app, None, "", ""))
}

/// The sign-up form. Whatever the address's state, a valid request gets the same answer
/// ("check your inbox"), so the form cannot tell anyone who is subscribed.
async fn subscribe(
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

async fn confirm_page(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    let answer = confirm_view(&app, &token, false).await;
    app.respond(answer)
}

async fn confirm(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    let answer = confirm_view(&app, &token, true).await;
    app.respond(answer)
}
