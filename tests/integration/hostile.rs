//! Issue 14, as an attacker would try it: feeds that point Gazette at the machine it
//! runs on, nesting and floods meant to stall it, a slow server meant to hold it, broken
//! CSV, and a sign-up form used to mail strangers. Served from 127.0.0.1 (wiremock) and
//! driven through the real binary.

use std::time::{Duration, Instant};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::Mail;
use crate::daemon::Daemon;
use crate::endpoint::{client, get, post as post_form, site_with_web, Server};
use crate::wild_feeds::{gather, post, rfc822, rss, serve_bytes, site_with};

/// An essay item whose comment feed is `comments`.
fn essay_with_comments(base: &str, id: u32, comments: &str) -> String {
    format!(
        r#"	<item>
		<title>Essay {id}</title>
		<link>{base}/2026/11/essay-{id}/</link>
		<pubDate>{}</pubDate>
		<guid isPermaLink="false">{base}/?p={id}</guid>
		<description><![CDATA[<p>Essay {id}.</p>]]></description>
		<wfw:commentRss>{comments}</wfw:commentRss>
	</item>
"#,
        rfc822(1)
    )
}

/// A WordPress comment feed with one reply to essay `id`.
fn comment_feed(base: &str, id: u32, who: &str) -> String {
    rss(
        base,
        &format!(
            r#"	<item>
		<title>By: {who}</title>
		<link>{base}/2026/11/essay-{id}/#comment-{id}1</link>
		<dc:creator><![CDATA[{who}]]></dc:creator>
		<pubDate>{}</pubDate>
		<guid isPermaLink="false">{base}/?p={id}#comment-{id}1</guid>
		<description><![CDATA[A reply from {who}.]]></description>
	</item>
"#,
            rfc822(1)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn comment_feeds_and_redirects_aimed_inside_are_never_fetched() {
    let origin = MockServer::start().await;
    let inside = MockServer::start().await;
    let base = origin.uri();
    let (pa, pb) = (origin.address().port(), inside.address().port());
    // What an attacker would like read back: answered by anything that asks.
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(comment_feed(&base, 1, "Secret"), "application/rss+xml"),
        )
        .mount(&inside)
        .await;
    let aimed = [
        ("loopback", format!("http://127.0.0.1:{pb}/c/loopback")),
        ("localhost", format!("http://localhost:{pb}/c/localhost")),
        ("short", format!("http://127.1:{pb}/c/short")),
        ("decimal", format!("http://2130706433:{pb}/c/decimal")),
        ("hex", format!("http://0x7f000001:{pb}/c/hex")),
        ("zero", format!("http://0.0.0.0:{pb}/c/zero")),
        ("v6", format!("http://[::1]:{pb}/c/v6")),
        ("mapped", format!("http://[::ffff:127.0.0.1]:{pb}/c/mapped")),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".to_owned(),
        ),
        (
            "userinfo",
            format!("http://user:pass@127.0.0.1:{pa}/c/userinfo"),
        ),
        ("redirect-ip", format!("{base}/r/ip")),
        ("redirect-name", format!("{base}/r/name")),
    ];
    let mut items = essay_with_comments(&base, 100, &format!("{base}/2026/11/essay-100/feed/"));
    for (i, (_, url)) in aimed.iter().enumerate() {
        items.push_str(&essay_with_comments(&base, i as u32 + 1, url));
    }
    serve_bytes(
        &origin,
        "/feed/",
        rss(&base, &items).into_bytes(),
        "application/rss+xml",
    )
    .await;
    serve_bytes(
        &origin,
        "/2026/11/essay-100/feed/",
        comment_feed(&base, 100, "Ada").into_bytes(),
        "application/rss+xml",
    )
    .await;
    for (at, to) in [
        ("/r/ip", format!("http://127.0.0.1:{pb}/c/redirected")),
        (
            "/r/name",
            format!("http://localhost:{pb}/c/redirected-name"),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path(at))
            .respond_with(ResponseTemplate::new(302).insert_header("location", to.as_str()))
            .mount(&origin)
            .await;
    }
    // `localhost` and the metadata address are named as the source's own hosts, so what
    // stops them is the address check, not the same-site rule.
    let site = site_with(&format!(
        "[[source]]\nname = \"blog\"\ntype = \"feed\"\nallow_private = true\n\
         follow_hosts = [\"localhost\", \"169.254.169.254\"]\nurl = \"{base}/feed/\""
    ));
    let (code, stdout, stderr) = gather(&site);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("13 new essays, 1 new reply"),
        "the source's own comment feed is read: {stdout}\n{stderr}"
    );
    let hits = inside.received_requests().await.unwrap_or_default();
    assert!(
        hits.is_empty(),
        "fetched inside: {:?}",
        hits.iter().map(|r| r.url.to_string()).collect::<Vec<_>>()
    );
    let origin_paths: Vec<String> = origin
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert!(
        !origin_paths.iter().any(|p| p == "/c/userinfo"),
        "{origin_paths:?}"
    );
    let said = |marker: &str, why: &str| {
        let line = stderr
            .lines()
            .find(|l| l.contains(marker) && l.contains("not fetched"))
            .unwrap_or_else(|| panic!("no refusal for {marker}:\n{stderr}"));
        assert!(line.contains(why), "{marker}: {line}");
    };
    said("/c/loopback", "is a loopback address");
    said("/c/short", "127.0.0.1 is a loopback address");
    said("/c/decimal", "127.0.0.1 is a loopback address");
    said("/c/hex", "127.0.0.1 is a loopback address");
    said("/c/localhost", "localhost resolves to");
    said("/c/zero", "not the source's own site");
    said("/c/v6", "not the source's own site");
    said("/c/mapped", "not the source's own site");
    said("/latest/meta-data/", "link-local");
    said("/c/userinfo", "user name or password");
    said("/r/ip", "redirect to http://127.0.0.1");
    said("/r/name", "localhost resolves to");
    let db = site.db();
    let secret: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM reply WHERE author = 'Secret'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(secret, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_on_a_private_address_needs_allow_private() {
    let origin = MockServer::start().await;
    let base = origin.uri();
    serve_bytes(
        &origin,
        "/feed/",
        rss(&base, "").into_bytes(),
        "application/rss+xml",
    )
    .await;
    let site = site_with(&format!(
        "[[source]]\nname = \"intranet\"\ntype = \"feed\"\nurl = \"{base}/feed/\""
    ));
    let (code, stdout, stderr) = gather(&site);
    assert_eq!(
        code, 2,
        "a failed source is a partial run: {stdout}\n{stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("source `intranet` failed"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("127.0.0.1 is a loopback address"), "{line}");
    assert!(line.contains("allow_private = true"), "{line}");
    assert!(origin
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_new_essays_is_capped_per_gather_and_per_edition() {
    let server = MockServer::start().await;
    let base = server.uri();
    let feed = |n: u32| {
        let items: String = (1..=n)
            .map(|i| {
                post(
                    &base,
                    i,
                    &format!("e-{i}"),
                    &format!("Flood {i}"),
                    &format!("<pubDate>{}</pubDate>", rfc822(1)),
                    "<p>More.</p>",
                )
            })
            .collect();
        rss(&base, &items).into_bytes()
    };
    Mock::given(method("GET"))
        .and(path("/feed/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(feed(1), "application/rss+xml"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    serve_bytes(&server, "/feed/", feed(130), "application/rss+xml").await;
    let site = site_with(&format!(
        "[[source]]\nname = \"flood\"\ntype = \"feed\"\nallow_private = true\ncomment_feeds = false\nurl = \"{base}/feed/\""
    ));
    assert_eq!(gather(&site).0, 0);
    // `send` gathers first: 130 new, 50 taken, the rest held.
    let send = site.gazette(&["send"]);
    assert_eq!(send.code, 0, "{send:?}");
    assert!(
        send.stderr.contains("held=79") && send.stderr.contains("max_new_items"),
        "{}",
        send.stderr
    );
    assert_eq!(site.count("SELECT COUNT(*) FROM essay"), 51);
    let mails = site.outbox();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].subject.starts_with("20 essays"),
        "{}",
        mails[0].subject
    );
    assert!(
        mails[0]
            .text
            .contains("...and 31 more essays at https://review.example.org"),
        "{}",
        mails[0].text
    );
    assert!(mails[0]
        .html
        .contains("and 31 more essays at <a href=\"https://review.example.org\">"));

    // The held ones come with the next gathers, not never.
    let (_, stdout, _) = gather(&site);
    assert!(stdout.contains("50 new essays"), "{stdout}");
    let (_, stdout, _) = gather(&site);
    assert!(stdout.contains("29 new essays"), "{stdout}");
    assert_eq!(site.count("SELECT COUNT(*) FROM essay"), 130);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_retry_after_comment_feeds_cannot_hold_a_gather_past_its_budget() {
    let server = MockServer::start().await;
    let base = server.uri();
    let items: String = (1..=6)
        .map(|i| essay_with_comments(&base, i, &format!("{base}/c/{i}/")))
        .collect();
    serve_bytes(
        &server,
        "/feed/",
        rss(&base, &items).into_bytes(),
        "application/rss+xml",
    )
    .await;
    for i in 1..=3 {
        // Hangs for a minute, longer than the budget.
        Mock::given(method("GET"))
            .and(path(format!("/c/{i}/")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(comment_feed(&base, i, "Slow"), "application/rss+xml")
                    .set_delay(Duration::from_secs(60)),
            )
            .mount(&server)
            .await;
    }
    for i in 4..=6 {
        Mock::given(method("GET"))
            .and(path(format!("/c/{i}/")))
            .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "100"))
            .mount(&server)
            .await;
    }
    let site = site_with(&format!(
        "[[source]]\nname = \"slow\"\ntype = \"feed\"\nallow_private = true\ngather_budget = \"4s\"\nurl = \"{base}/feed/\""
    ));
    site.edit(
        "config.toml",
        "timeout = \"10s\"",
        "timeout = \"90s\"\nretries = 3",
    );
    site.edit("config.toml", "retries = 0\n", "per_host = 8\n");
    let started = Instant::now();
    let (code, stdout, stderr) = gather(&site);
    let took = started.elapsed();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("6 new essays, 0 new replies"), "{stdout}");
    assert_eq!(
        stderr
            .matches("time budget for this gather (`gather_budget`) ran out")
            .count(),
        3,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("the server answered 503").count(),
        3,
        "{stderr}"
    );
    // Not a timing target: a gather that honoured the hang or the Retry-After would take
    // a minute or more, one bound by its budget a few seconds.
    assert!(took < Duration::from_secs(50), "took {took:?}");
}

/// GET /healthz over a plain socket, the answer's text ("" when none came in 5 s).
fn healthz(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn deeply_nested_items_are_cleaned_in_line_while_the_endpoint_answers() {
    // 100,000 nested <div>s in each of three items (6.6 MB with the feed's summaries):
    // minutes of quadratic parsing before, milliseconds now; the daemon's /healthz is
    // asked all the while its second gather (the first precedes the endpoint) runs.
    let n = 100_000;
    let body = format!("{}deep words{}", "<div>".repeat(n), "</div>".repeat(n));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(MockServer::start());
    let base = server.uri();
    let items: String = (1..=3)
        .map(|i| {
            post(
                &base,
                i,
                &format!("deep-{i}"),
                &format!("Deep {i}"),
                &format!("<pubDate>{}</pubDate>", rfc822(1)),
                &body,
            )
        })
        .collect();
    rt.block_on(serve_bytes(
        &server,
        "/feed/",
        rss(&base, &items).into_bytes(),
        "application/rss+xml",
    ));
    let site = site_with(&format!(
        "[web]\nlisten = \"127.0.0.1:0\"\n\n[[source]]\nname = \"deep\"\ntype = \"feed\"\nallow_private = true\ncomment_feeds = false\nurl = \"{base}/feed/\""
    ));
    site.edit(
        "config.toml",
        "[http]",
        "[daemon]\ngather_every = \"2s\"\n\n[http]",
    );
    let mut daemon = Daemon::start(&site, "run");
    let mut addr = String::new();
    daemon.wait_for("the endpoint", |log| {
        log.split("listening on http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(|a| addr = a.to_owned())
            .is_some()
    });
    let mut probes = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon.log().matches("Gathered source.").count() < 2 {
        let answer = healthz(&addr);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "healthz failed during the gather: {answer:?}\n{}",
            daemon.log()
        );
        probes += 1;
        assert!(Instant::now() < deadline, "no gather:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(probes > 0);
    let (code, log) = daemon.stop();
    assert_eq!(code, 0, "{log}");
    let db = site.db();
    let kept: Vec<(String, i64)> = db
        .prepare("SELECT content_html, length(content_html) FROM essay ORDER BY key")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(kept.len(), 3, "{log}");
    for (html, len) in kept {
        assert!(html.contains("deep words"), "the words are kept");
        assert!(html.matches("<div>").count() <= 128 && len < 4000, "{len}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_half_open_connections_neither_silence_healthz_nor_stay_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // This process needs the descriptors too.
    let mut limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current = limit.maximum;
    let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, limit);
    let site = site_with_web("");
    let server = Server::start(&site);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..1500 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // A request head that never ends.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(s);
    }
    let (status, body) = get(&format!("{}/healthz", server.base)).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    // Each is closed by the endpoint (header-read timeout, 10 s), none left open.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut closed = 0;
    for mut s in idle {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("{closed} of 1500 closed after 30 s"),
            }
        }
        closed += 1;
    }
    assert_eq!(closed, 1500);
    let (status, _) = get(&format!("{}/healthz", server.base)).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_the_public_listener_need_the_bearer_token() {
    let site = site_with_web("metrics_token_env = \"GAZETTE_TEST_METRICS\"");
    let token = "3f9c1e7a5b2d4c6e8f0a1b3c5d7e9f11";
    let server = Server::start_env(&site, &[("GAZETTE_TEST_METRICS", token)]);
    let url = format!("{}/metrics", server.base);
    let anonymous = client().get(&url).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert!(!anonymous.text().await.unwrap().contains("gazette_"));
    let wrong = client()
        .get(&url)
        .bearer_auth("0".repeat(32))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let right = client().get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(right.status().as_u16(), 200);
    assert!(right
        .text()
        .await
        .unwrap()
        .contains("gazette_editions_total"));
}

/// The confirmation messages in the outbox, once `n` of them are there (20 s at most).
async fn confirmations(site: &crate::common::Site, n: usize) -> Vec<Mail> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<Mail> = site
            .emls_in("outbox")
            .into_iter()
            .filter(|(name, _)| name.starts_with("confirm-"))
            .map(|(_, b)| Mail::parse(&b))
            .collect();
        if found.len() >= n || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_relays_no_stranger_text_and_spellings_of_one_mailbox_share_its_limit() {
    let site = site_with_web("subscribe_per_address = 2\nsubscribe_per_ip = 50\n");
    let server = Server::start(&site);
    let relayed = format!(
        "=?utf-8?q?Win=0D=0A?= Visit https://evil.example {}",
        "N".repeat(200)
    );
    for email in [
        "ada.l+news@example.net",
        "ADA.L@example.net",
        "adal+x@example.net",
        "a.d.a.l@example.net",
    ] {
        let (status, page) = post_form(
            &format!("{}/subscribe", server.base),
            &[
                ("email", email),
                ("name", relayed.as_str()),
                ("digest", "essays"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page.contains("Check your inbox"),
            "the same answer for every spelling"
        );
    }
    // Another mailbox is not held back by the first one's limit.
    post_form(
        &format!("{}/subscribe", server.base),
        &[("email", "bo@example.net"), ("digest", "essays")],
    )
    .await;
    confirmations(&site, 3).await;
    // Give a fourth (which must not come) time to be written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mails = confirmations(&site, 3).await;
    let to: Vec<&str> = mails.iter().map(|m| m.to_addr.as_str()).collect();
    assert_eq!(mails.len(), 3, "two for the mailbox, one for bo: {to:?}");
    assert_eq!(
        to.iter()
            .filter(|t| t.contains("example.net") && !t.starts_with("bo@"))
            .count(),
        2,
        "{to:?}"
    );
    for m in &mails {
        assert_eq!(m.to_name, None, "no name in To: {:?}", m.to_name);
        assert!(
            !m.text.contains("evil.example") && !m.html.contains("evil.example"),
            "{}",
            m.text
        );
        assert!(!m.raw.contains("=?utf-8?q?Win"), "{}", m.raw);
    }
    // The name is kept for the subscription itself, capped.
    let kept: String = site
        .db()
        .query_row("SELECT name FROM signup ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kept.chars().count(), 100);
}

#[test]
fn a_csv_with_an_open_quote_reports_it_and_one_mailbox_spelled_two_ways_is_one_reader() {
    let site = crate::common::Site::new();
    // "José" with a precomposed é and with e + U+0301; an unclosed quote on line 3.
    site.write(
        "readers.csv",
        "email,name\n\
         jos\u{e9}@example.org,Jos\u{e9}\n\
         cy@example.org,\"Cy Young\n\
         dee@example.org,Dee\n\
         jose\u{301}@example.org,Jose\u{301} again\n",
    );
    let run = site.gazette(&["subscribers", "import", "readers.csv"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("readers.csv:3: a quote opened on this row is not closed, so lines 3–5 were read as one row"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("1 added"), "{}", run.stdout);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM subscriber WHERE email LIKE 'jos%'"),
        1
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM subscriber WHERE email LIKE 'cy@%'"),
        0
    );

    // Export: a name typed as a formula comes out inert.
    site.write(
        "evil.csv",
        "email,name\nfi@example.org,\"=HYPERLINK(\"\"https://evil.example\"\")\"\n",
    );
    assert_eq!(site.gazette(&["subscribers", "import", "evil.csv"]).code, 0);
    let export = site.gazette(&["subscribers", "export"]);
    assert!(export.stdout.contains("'=HYPERLINK"), "{}", export.stdout);
}

#[test]
fn a_hostile_subject_and_a_huge_name_leave_headers_encoded_and_short() {
    let site = crate::common::Site::new();
    let smuggle = "=?utf-8?q?Hi=0D=0ABcc:_victim@example.net?=";
    site.edit(
        "config.toml",
        "subject = \"{{ site.name }}: {{ essays | length }} new essay{{ essays | length | pluralize }}\"",
        &format!("subject = \"{smuggle} {}\"", "w".repeat(5000)),
    );
    site.write(
        "huge.csv",
        &format!(
            "email,name,digests\nhuge@example.org,{},essays\n",
            "N".repeat(100_000)
        ),
    );
    assert_eq!(site.gazette(&["subscribers", "import", "huge.csv"]).code, 0);
    let send = site.gazette(&["send"]);
    assert_eq!(send.code, 0, "{send:?}");
    // The essays digest's copies (the replies digest keeps its own subject).
    let mails: Vec<Mail> = site
        .outbox()
        .into_iter()
        .filter(|m| m.list_id.as_deref().is_some_and(|l| l.contains("<essays.")))
        .collect();
    assert!(mails.len() >= 2);
    let huge = mails
        .iter()
        .find(|m| m.to_addr == "huge@example.org")
        .expect("the huge name's copy");
    for m in &mails {
        let head = &m.raw[..m.raw.find("\r\n\r\n").expect("header end")];
        let longest = head.lines().map(str::len).max().unwrap_or(0);
        assert!(longest <= 998, "a {longest}-octet header line");
        assert!(!head.contains(smuggle), "passed raw:\n{head}");
        assert!(
            m.subject.starts_with(smuggle),
            "decodes as written: {}",
            m.subject
        );
        assert!(!m.subject.contains('\n') && m.subject.chars().count() == 200);
    }
    assert_eq!(
        huge.to_name.as_deref().map(|n| n.chars().count()),
        Some(100)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_feed_of_a_hundred_thousand_undated_items_is_read_only_in_part_and_mails_nothing() {
    let server = MockServer::start().await;
    let base = server.uri();
    let items: String = (0..100_000)
        .map(|i| {
            format!("<item><title>Item {i}</title><guid isPermaLink=\"false\">g{i}</guid></item>")
        })
        .collect();
    serve_bytes(
        &server,
        "/feed/",
        rss(&base, &items).into_bytes(),
        "application/rss+xml",
    )
    .await;
    let site = site_with(&format!(
        "[[source]]\nname = \"flood\"\ntype = \"feed\"\nallow_private = true\ncomment_feeds = false\nurl = \"{base}/feed/\""
    ));
    let (code, stdout, stderr) = gather(&site);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("items=100000") && stderr.contains("kept=1000"),
        "{stderr}"
    );
    assert!(stdout.contains("1000 new essays"), "{stdout}");
    // Undated items of a first gather are the archive: no edition mails them.
    let send = site.gazette(&["send"]);
    assert_eq!(send.code, 0, "{send:?}");
    assert!(site.outbox().is_empty(), "{}", send.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rest_root_a_wordpress_home_page_points_elsewhere_is_never_fetched() {
    let site_server = MockServer::start().await;
    let inside = MockServer::start().await;
    let base = site_server.uri();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("[]", "application/json"))
        .mount(&inside)
        .await;
    // The discovery header WordPress sends, naming another host's API.
    let root = format!("http://localhost:{}/wp-json/", inside.address().port());
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "link",
                    format!("<{root}>; rel=\"https://api.w.org/\"").as_str(),
                )
                .set_body_raw("<html><head></head><body></body></html>", "text/html"),
        )
        .mount(&site_server)
        .await;
    let site = site_with(&format!(
        "[[source]]\nname = \"wp\"\ntype = \"wordpress\"\nallow_private = true\nbase_url = \"{base}\""
    ));
    let (code, stdout, stderr) = gather(&site);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("source `wp` failed"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains("not fetched") && line.contains("localhost is not the source's own site"),
        "{line}"
    );
    assert!(inside
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}
