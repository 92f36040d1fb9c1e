//! The web endpoint (axum): sign-up with double opt-in, one-click unsubscribe (RFC 8058),
//! the preferences page, `/healthz` and `/metrics`. Served by `gazette serve` and inside
//! `gazette run` when `[web]` is configured.
//!
//! Every link carries a signed token ([`crate::token`]); a GET never changes anything, so
//! link scanners that follow every URL in a message unsubscribe nobody. Pages are Tera
//! templates (`templates/web/`, with built-in defaults) with every value escaped.

mod archive;
mod choices;
mod follows;
pub mod listen;
mod metrics;
mod signup;

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
            get(choices::unsubscribe_page).post(choices::unsubscribe_now),
        )
        .route(
            "/preferences/{token}",
            get(choices::preferences_page).post(choices::preferences_save),
        )
        .route(
            "/subscribe",
            get(signup::subscribe_page).post(signup::subscribe),
        )
        .route(
            "/confirm/{token}",
            get(signup::confirm_page).post(signup::confirm),
        )
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
    let store = Store::connect(&config.state)?;
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

fn digest_choices(app: &App, chosen: &dyn Fn(&str) -> bool) -> Vec<serde_json::Value> {
    app.config
        .digests
        .iter()
        .map(|d| serde_json::json!({"name": d.name, "title": d.title, "chosen": chosen(&d.name)}))
        .collect()
}
