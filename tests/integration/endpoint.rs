//! The web endpoint over real HTTP: `gazette serve` (the real binary) on a loopback port,
//! driven by an HTTP client, with what it changed read back from the SQLite file and what
//! it mailed read back from the outbox.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::common::{Mail, Site};

/// The shipped publication with a `[web]` table (public address as in production; the
/// tests talk to the loopback port instead, like a reverse proxy would).
pub(crate) fn site_with_web(extra: &str) -> Site {
    let site = Site::new();
    site.edit(
        "config.toml",
        "[[source]]\nname = \"site\"",
        &format!("[web]\nlisten = \"127.0.0.1:0\"\n{extra}\n[[source]]\nname = \"site\""),
    );
    site
}

/// `gazette serve`, stopped (SIGTERM) when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    /// The `web.metrics_listen` address, when one is configured.
    pub(crate) metrics: Option<String>,
}

impl Server {
    pub(crate) fn start(site: &Site) -> Server {
        Server::start_env(site, &[])
    }

    pub(crate) fn start_env(site: &Site, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gazette"))
            .args(["-vv", "serve"])
            .envs(env.iter().copied())
            .current_dir(site.dir.path())
            .env_remove("GAZETTE_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut metrics = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Metrics on http://").nth(1) {
                    metrics = rest.split('/').next().map(str::to_owned);
                }
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send((addr.to_owned(), metrics.take()));
                }
            }
        });
        let (addr, metrics) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("gazette serve said where it listens");
        Server {
            child,
            base: format!("http://{addr}"),
            metrics: metrics.map(|m| format!("http://{m}")),
        }
    }

    /// The loopback URL for a link's path (links carry the public address).
    pub(crate) fn url(&self, link: &str) -> String {
        let path = link
            .split_once("://")
            .map(|(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]))
            .unwrap_or(link);
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

pub(crate) fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) async fn get(url: &str) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub(crate) async fn post(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let r = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The https link in a message's List-Unsubscribe header.
fn one_click_link(m: &Mail) -> String {
    let header = m.list_unsubscribe.clone().expect("List-Unsubscribe");
    header
        .split(['<', '>'])
        .find(|p| p.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https URL in {header}"))
        .to_owned()
}

pub(crate) fn link_in(text: &str, marker: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {text}"));
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

fn choices(site: &Site) -> Vec<(String, String, i64)> {
    let db = site.db();
    let mut stmt = db
        .prepare(
            "SELECT s.email, c.digest, c.wanted FROM digest_choice c JOIN subscriber s ON s.id = c.subscriber_id ORDER BY 1, 2",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn token_of(link: &str) -> String {
    link.rsplit('/').next().unwrap().to_owned()
}

fn add_essay(site: &Site, slug: &str, title: &str) {
    site.write(
        &format!("examples/site/essays/{slug}.md"),
        &format!(
            "+++\ntitle = \"{title}\"\nauthor = \"A. Writer\"\n+++\n\nA new essay about {title}.\n"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_unsubscribe_leaves_one_digest_for_its_own_subscriber_only() {
    let site = site_with_web("");
    let sent = site.gazette_async(&["send"]).await;
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let essays = site.outbox_matching("essays-0001-");
    assert_eq!(essays.len(), 2);
    let ada = essays
        .iter()
        .find(|m| m.to_addr == "ada@example.org")
        .unwrap();
    // RFC 8058 headers, each message with its own link.
    assert!(
        ada.raw
            .contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{}",
        ada.raw
    );
    let ada_link = one_click_link(ada);
    assert!(ada_link.starts_with("https://longmargin.example.org/unsubscribe/"));
    let bo_link = one_click_link(essays.iter().find(|m| m.to_addr != ada.to_addr).unwrap());
    assert_ne!(ada_link, bo_link);
    // The body's link goes to the page (the same URL, answering GET with a form).
    assert!(ada.text.contains(&ada_link), "{}", ada.text);
    assert!(ada.html.contains(&format!("href=\"{ada_link}\"")));

    // The secret that signs the links was made on first use, readable only by us.
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(site.path("gazette.secret")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
    }
    let server = Server::start(&site);
    // A GET (a link scanner, a preview) shows the button and changes nothing.
    let (status, page) = get(&server.url(&ada_link)).await;
    assert_eq!(status, 200);
    assert!(page.contains("ada@example.org") && page.contains("<form method=\"post\">"));
    assert!(choices(&site).is_empty(), "a GET changed nothing");

    // Forged, truncated, moved to another subscriber, or made for another purpose: 4xx.
    let token = token_of(&ada_link);
    let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .unwrap();
    let ada_id = i64::from_be_bytes(raw[..8].try_into().unwrap());
    raw[..8].copy_from_slice(&(ada_id + 1).to_be_bytes());
    let moved = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
    let mut forged = token.clone().into_bytes();
    let i = forged.len() - 12;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let preferences = link_in(&ada.text, "https://longmargin.example.org/preferences/");
    for bad in [
        moved,
        forged,
        token[..token.len() - 4].to_owned(),
        token_of(&preferences),
        "AAAA".into(),
    ] {
        let url = format!("{}/unsubscribe/{bad}", server.base);
        let (status, _) = post(&url, &[("List-Unsubscribe", "One-Click")]).await;
        assert!(
            (400..500).contains(&status),
            "{bad} got {status}, not a 4xx"
        );
        let (status, _) = get(&url).await;
        assert!((400..500).contains(&status));
    }
    // Without the one-click body nothing happens either.
    let (status, _) = post(&server.url(&ada_link), &[("other", "x")]).await;
    assert_eq!(status, 400);
    assert!(choices(&site).is_empty(), "bad requests changed nothing");

    // The mail client's one-click POST: 200, at once, and again (idempotent).
    for _ in 0..2 {
        let (status, page) =
            post(&server.url(&ada_link), &[("List-Unsubscribe", "One-Click")]).await;
        assert_eq!(status, 200);
        assert!(page.contains("You are unsubscribed"), "{page}");
    }
    assert_eq!(
        choices(&site),
        [("ada@example.org".to_owned(), "essays".to_owned(), 0)]
    );

    // The next essays edition skips her, and only her; her replies digest continues.
    add_essay(&site, "late-autumn", "Late autumn");
    let sent = site.gazette_async(&["send"]).await;
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let second: Vec<String> = site
        .outbox_matching("essays-0002-")
        .into_iter()
        .map(|m| m.to_addr)
        .collect();
    assert_eq!(second, ["Bo.Chen@example.net"]);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM subscriber WHERE status = 'active'"),
        3,
        "leaving one digest suppresses only that digest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_everything_on_the_preferences_page_wins_over_config_toml() {
    let site = site_with_web("");
    assert_eq!(site.gazette_async(&["send"]).await.code, 0);
    let bo = site
        .outbox_matching("essays-0001-")
        .into_iter()
        .find(|m| m.to_addr == "Bo.Chen@example.net")
        .unwrap();
    let prefs = link_in(&bo.text, "https://longmargin.example.org/preferences/");
    let server = Server::start(&site);
    let (status, page) = get(&server.url(&prefs)).await;
    assert_eq!(status, 200);
    assert!(page.contains("Bo.Chen@example.net") && page.contains("value=\"Asia&#x2F;Kolkata\""));
    // A bad zone is refused with a message, nothing saved.
    let (status, page) = post(
        &server.url(&prefs),
        &[
            ("digest", "essays"),
            ("timezone", "Mars/Olympus"),
            ("action", "save"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("not a time zone"));
    // Saving: only the replies digest, another zone.
    let (status, page) = post(
        &server.url(&prefs),
        &[
            ("digest", "replies"),
            ("timezone", "America/Chicago"),
            ("action", "save"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains("Saved.") && page.contains("value=\"America&#x2F;Chicago\""));
    assert_eq!(
        choices(&site),
        [
            ("Bo.Chen@example.net".to_owned(), "essays".to_owned(), 0),
            ("Bo.Chen@example.net".to_owned(), "replies".to_owned(), 1),
        ]
    );
    let listed = site.gazette_async(&["subscribers", "list", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let bo = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["email"] == "Bo.Chen@example.net")
        .unwrap();
    assert_eq!(bo["digests"], serde_json::json!(["replies"]));
    assert_eq!(bo["timezone"], "America/Chicago");
    let (status, _) = post(&server.url(&prefs), &[("action", "leave")]).await;
    assert_eq!(status, 200);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM subscriber WHERE email = 'Bo.Chen@example.net' AND status = 'unsubscribed'"),
        1
    );
    drop(server);
    // Still listed in config.toml: check warns, and no edition mails him.
    let check = site.gazette_async(&["check"]).await;
    let said = format!("{}{}", check.stdout, check.stderr);
    assert!(
        said.contains("lists Bo.Chen@example.net, which is unsubscribed"),
        "{check:?}"
    );
    add_essay(&site, "winter", "Winter");
    assert_eq!(site.gazette_async(&["send"]).await.code, 0);
    let second: Vec<String> = site
        .outbox_matching("essays-0002-")
        .into_iter()
        .map(|m| m.to_addr)
        .collect();
    assert_eq!(second, ["ada@example.org"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_subscribes_confirms_receives_the_next_digest_and_leaves_with_one_click() {
    let site = site_with_web("subscribe_per_address = 2\nsubscribe_per_ip = 5\n");
    let server = Server::start(&site);
    let script = "<script>alert(1)</script>";
    let (status, form) = get(&format!("{}/subscribe", server.base)).await;
    assert_eq!(status, 200);
    assert!(form.contains("name=\"email\"") && !form.contains("<script"));

    // A bad address re-shows the form with the values escaped.
    let (status, page) = post(
        &format!("{}/subscribe", server.base),
        &[("email", script), ("name", script), ("digest", "essays")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(!page.contains("<script"), "{page}");
    assert!(page.contains("&lt;script&gt;"));

    let signup = [
        ("email", "newcomer@Example.COM"),
        ("name", script),
        ("digest", "essays"),
    ];
    let (status, check_inbox) = post(&format!("{}/subscribe", server.base), &signup).await;
    assert_eq!(status, 200);
    assert!(check_inbox.contains("Check your inbox") && !check_inbox.contains("<script"));
    // Nothing is mailed to the address but the confirmation until it is confirmed.
    assert_eq!(
        site.count("SELECT COUNT(*) FROM subscriber WHERE email = 'newcomer@example.com'"),
        0
    );

    // An address that is already subscribed gets the very same answer.
    let (_, known) = post(
        &format!("{}/subscribe", server.base),
        &[
            ("email", "ada@example.org"),
            ("name", script),
            ("digest", "essays"),
        ],
    )
    .await;
    assert_eq!(
        known.replace("ada@example.org", "X"),
        check_inbox.replace("newcomer@example.com", "X"),
        "the form does not tell who is subscribed"
    );

    // The confirmation, from the outbox.
    let deadline = Instant::now() + Duration::from_secs(20);
    let confirmation = loop {
        let found: Vec<(String, Vec<u8>)> = site
            .emls_in("outbox")
            .into_iter()
            .filter(|(n, _)| n.starts_with("confirm-"))
            .collect();
        if let Some(m) = found
            .iter()
            .map(|(_, b)| Mail::parse(b))
            .find(|m| m.to_addr == "newcomer@example.com")
        {
            break m;
        }
        assert!(Instant::now() < deadline, "no confirmation was written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(confirmation.subject.contains("Confirm your subscription"));
    assert!(
        !confirmation.html.contains("<script"),
        "{}",
        confirmation.html
    );
    let confirm = link_in(
        &confirmation.text,
        "https://longmargin.example.org/confirm/",
    );
    // The bare link (a long token) may break anywhere, so it wraps on a phone instead
    // of widening the message.
    let at = confirmation
        .html
        .find("Or open https:")
        .unwrap_or_else(|| panic!("{}", confirmation.html));
    let bare = &confirmation.html[..at];
    let paragraph = &bare[bare.rfind("<p").unwrap()..];
    assert!(paragraph.contains("overflow-wrap:anywhere"), "{paragraph}");

    // A confirmation token is no unsubscribe token, and vice versa.
    let (status, _) = post(
        &format!("{}/unsubscribe/{}", server.base, token_of(&confirm)),
        &[("List-Unsubscribe", "One-Click")],
    )
    .await;
    assert_eq!(status, 404);

    // Following the link shows a button; only the POST subscribes.
    let (status, page) = get(&server.url(&confirm)).await;
    assert_eq!(status, 200);
    assert!(page.contains("newcomer@example.com") && page.contains("New essays"));
    assert_eq!(
        site.count("SELECT COUNT(*) FROM subscriber WHERE email = 'newcomer@example.com'"),
        0
    );
    let (status, page) = post(&server.url(&confirm), &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You are subscribed"));
    assert_eq!(
        site.count("SELECT COUNT(*) FROM subscriber WHERE email = 'newcomer@example.com' AND status = 'active' AND origin = 'web'"),
        1
    );
    // The preferences page escapes the name too.
    let prefs = link_in(
        &page,
        "https:&#x2F;&#x2F;longmargin.example.org&#x2F;preferences&#x2F;",
    )
    .replace("&#x2F;", "/");
    let (status, prefs_page) = get(&server.url(&prefs)).await;
    assert_eq!(status, 200);
    assert!(prefs_page.contains("&lt;script&gt;") && !prefs_page.contains("<script"));

    // Rate limits: a third confirmation for one address is not mailed (same answer) ...
    for _ in 0..2 {
        let (status, again) = post(&format!("{}/subscribe", server.base), &signup).await;
        assert_eq!(status, 200);
        assert_eq!(again, check_inbox, "the same answer, mailed or not");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to_newcomer = site
        .emls_in("outbox")
        .iter()
        .filter(|(n, _)| n.starts_with("confirm-"))
        .filter(|(_, b)| Mail::parse(b).to_addr == "newcomer@example.com")
        .count();
    assert_eq!(to_newcomer, 2, "the per-address limit held back the third");
    // ... and the sixth sign-up from one client address is refused outright.
    let (status, _) = post(&format!("{}/subscribe", server.base), &signup).await;
    assert_eq!(status, 429);
    drop(server);

    // The next digest reaches the newcomer, with their own one-click link.
    let sent = site.gazette_async(&["send"]).await;
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let mine = site
        .outbox_matching("essays-0001-")
        .into_iter()
        .find(|m| m.to_addr == "newcomer@example.com")
        .expect("the newcomer got the digest");
    assert!(
        !mine.html.contains("<script"),
        "the name is escaped in the message"
    );
    let server = Server::start(&site);
    let (status, _) = post(
        &server.url(&one_click_link(&mine)),
        &[("List-Unsubscribe", "One-Click")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        choices(&site)
            .into_iter()
            .filter(|(_, _, wanted)| *wanted == 0)
            .collect::<Vec<_>>(),
        [("newcomer@example.com".to_owned(), "essays".to_owned(), 0)],
        "they left, and nobody else did"
    );
    // Replaying the used confirmation link (a forwarded mail, a link scanner) changes
    // nothing: they stay out of the digest they left.
    let before = choices(&site);
    for (status, page) in [
        get(&server.url(&confirm)).await,
        post(&server.url(&confirm), &[]).await,
    ] {
        assert_eq!(status, 200);
        assert!(page.contains("This link was already used"), "{page}");
    }
    assert_eq!(choices(&site), before);
}

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text parses")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, label: (&str, &str)) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_when_an_edition_is_sent() {
    let site = site_with_web("metrics_listen = \"127.0.0.1:0\"");
    let server = Server::start(&site);
    let metrics = server.metrics.clone().expect("metrics address logged");
    let (status, health) = get(&format!("{}/healthz", server.base)).await;
    assert_eq!((status, health.as_str()), (200, "ok\n"));
    // Not on the public listener: the counts are the operator's.
    let (status, public) = get(&format!("{}/metrics", server.base)).await;
    assert_eq!(status, 404, "{public}");
    assert!(!public.contains("gazette_"), "{public}");
    let (status, before) = get(&format!("{metrics}/metrics")).await;
    assert_eq!(status, 200);
    let before = scrape(&before);
    assert_eq!(
        value(&before, "gazette_editions_total", ("digest", "essays")),
        0.0
    );

    assert_eq!(site.gazette_async(&["send"]).await.code, 0);
    let (_, after) = get(&format!("{metrics}/metrics")).await;
    let parsed = scrape(&after);
    assert_eq!(
        value(&parsed, "gazette_editions_total", ("digest", "essays")),
        1.0
    );
    assert_eq!(
        value(&parsed, "gazette_deliveries", ("status", "sent")),
        2.0,
        "{after}"
    );
    assert_eq!(
        value(&parsed, "gazette_source_gathers_total", ("source", "site")),
        1.0
    );
    assert_eq!(
        value(&parsed, "gazette_source_failures_total", ("source", "site")),
        0.0
    );
    assert!(
        value(
            &parsed,
            "gazette_source_last_success_timestamp_seconds",
            ("source", "site")
        ) > 1.7e9
    );
    assert!(after.contains("# TYPE gazette_editions_total counter"));

    // Mail that came back is counted by kind: here a forged mailto unsubscribe.
    let forged = b"From: <x@example.net>\r\nTo: digest+unsubscribe.1.00000000000000000000@longmargin.example.org\r\nSubject: unsubscribe\r\nMessage-ID: <forged-1@example.net>\r\n\r\nunsubscribe\r\n";
    let run = crate::inbound::pipe(&site, forged, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (_, later) = get(&format!("{metrics}/metrics")).await;
    assert_eq!(
        value(
            &scrape(&later),
            "gazette_inbound_messages_total",
            ("kind", "forged")
        ),
        1.0,
        "{later}"
    );
    assert!(later.contains("# TYPE gazette_inbound_messages_total counter"));
}

#[test]
fn a_bad_web_table_names_file_line_and_key() {
    let site = site_with_web(
        "base_url = \"http://news.example.org\"\nsecret_env = \"GAZETTE_TEST_NO_SUCH_VAR\"\n",
    );
    site.edit(
        "config.toml",
        "listen = \"127.0.0.1:0\"",
        "listen = \"localhost\"",
    );
    let run = site.gazette(&["check"]);
    assert_eq!(run.code, 1);
    for needle in [
        "config.toml:",
        "`web.listen`",
        "`web.base_url`",
        "must be https",
        "`web.secret_env`",
    ] {
        assert!(run.stderr.contains(needle), "{needle} in {}", run.stderr);
    }
    let serve = Site::new().gazette(&["serve"]);
    assert_eq!(serve.code, 1);
    assert!(serve.stderr.contains("no [web] table"), "{}", serve.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gazette_run_serves_the_endpoint_and_refuses_to_start_on_a_taken_port() {
    let site = site_with_web("");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_gazette"))
        .args(["run"])
        .current_dir(site.dir.path())
        .env_remove("GAZETTE_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = daemon.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the daemon logged where its endpoint listens");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let (status, body) = get(&format!("http://{addr}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // A second daemon on the same port does not start half-working.
    let other = site_with_web("");
    other.edit(
        "config.toml",
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{addr}\""),
    );
    let refused = other.gazette_async(&["run"]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("cannot listen on {addr}")),
        "{}",
        refused.stderr
    );

    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let status = daemon.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_from_the_environment_signs_the_links_and_is_never_printed() {
    let secret = "correct-horse-battery-staple-0123456789abcdef";
    let site = site_with_web("secret_env = \"GAZETTE_TEST_WEB_SECRET\"\n");
    let env = [("GAZETTE_TEST_WEB_SECRET", secret)];
    let sent = site.gazette_env(&["-vv", "send"], &env);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    assert!(
        !site.path("gazette.secret").exists(),
        "no file when the env gives it"
    );
    let mail = site.outbox_matching("essays-0001-").remove(0);
    assert!(!mail.raw.contains(secret));
    let link = one_click_link(&mail);

    // Another secret: the same link is worthless.
    let other = Server::start_env(
        &site,
        &[(
            "GAZETTE_TEST_WEB_SECRET",
            "another-secret-of-enough-length-0123456789",
        )],
    );
    let (status, _) = post(&other.url(&link), &[("List-Unsubscribe", "One-Click")]).await;
    assert_eq!(status, 404);
    drop(other);

    let server = Server::start_env(&site, &env);
    let (status, _) = post(&server.url(&link), &[("List-Unsubscribe", "One-Click")]).await;
    assert_eq!(status, 200);
    drop(server);
    let check = site.gazette_env(&["-vv", "check"], &env);
    for out in [&sent.stdout, &sent.stderr, &check.stdout, &check.stderr] {
        assert!(!out.contains(secret), "the secret leaked: {out}");
    }
    let short = site.gazette_env(&["check"], &[("GAZETTE_TEST_WEB_SECRET", "short")]);
    assert_eq!(short.code, 1);
    assert!(
        short.stderr.contains("shorter than 32") && !short.stderr.contains("short\""),
        "{}",
        short.stderr
    );
}

#[test]
fn a_broken_page_template_is_reported_by_check() {
    let site = site_with_web("");
    site.write(
        "templates/web/unsubscribe.html",
        "{% extends \"web/layout.html\" %}{% block body %}{{ email | nosuchfilter }}{% endblock body %}",
    );
    let run = site.gazette(&["check"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("templates/web") && run.stderr.contains("nosuchfilter"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_carries_security_headers_and_templates_cannot_read_the_environment() {
    let site = site_with_web("");
    let server = Server::start(&site);
    for path in ["/subscribe", "/healthz", "/unsubscribe/forged-token"] {
        let r = client()
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        let h = r.headers();
        let header = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let csp = header("content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
    drop(server);

    // A page template that asks for a secret from the environment is refused by check.
    site.write(
        "templates/web/subscribe.html",
        "{% extends \"web/layout.html\" %}{% block body %}{{ get_env(name=\"GAZETTE_SECRET\") }}{% endblock body %}",
    );
    let run = site.gazette_env(&["check"], &[("GAZETTE_SECRET", "hunter2-not-for-pages")]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("get_env is disabled"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"));
}
