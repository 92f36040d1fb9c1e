//! Web sources against fixtures served from a local 127.0.0.1 server (wiremock) that the
//! tests start: WordPress-shaped RSS with comment feeds, Atom threading, JSON Feed, the
//! WordPress REST API, and hostile documents. The real binary does the gathering.

use std::path::Path;

use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::Site;

fn fixture(name: &str, base: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/web")
        .join(name);
    std::fs::read_to_string(&p)
        .unwrap()
        .replace("{{BASE}}", base)
}

/// A copy of the shipped publication whose config has these sources (see [`config_with`]).
fn site_with(sources: &str) -> Site {
    let site = Site::new();
    site.write("config.toml", &config_with(sources));
    site
}

async fn serve(server: &MockServer, at: &str, body: String, mime: &str) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, mime))
        .mount(server)
        .await;
}

/// A config with the given `[[source]]` blocks, one digest carrying everything (with a
/// look-back long enough for the fixtures' 2026 dates, short enough to leave 2019 out)
/// and one subscriber.
fn config_with(sources: &str) -> String {
    format!(
        r#"[site]
name = "Web Review"
base_url = "https://review.example.org"
from = "Web Review <digest@review.example.org>"

[http]
retries = 2
timeout = "10s"

{sources}

[[digest]]
name = "all"
schedule = "@daily"
subject = "{{{{ essays | length }}}} essays, {{{{ reply_count }}}} replies"
first_edition_lookback = "1000d"

[[subscriber]]
email = "reader@example.org"
name = "Reader"
"#
    )
}

fn rows(site: &Site, sql: &str) -> Vec<Vec<Option<String>>> {
    let db = site.db();
    let mut stmt = db.prepare(sql).unwrap();
    let n = stmt.column_count();
    let text = |v: rusqlite::types::Value| match v {
        rusqlite::types::Value::Null => None,
        rusqlite::types::Value::Integer(i) => Some(i.to_string()),
        rusqlite::types::Value::Real(f) => Some(f.to_string()),
        rusqlite::types::Value::Text(t) => Some(t),
        rusqlite::types::Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
    };
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| r.get::<_, rusqlite::types::Value>(i).map(text))
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn one(site: &Site, sql: &str) -> Option<String> {
    rows(site, sql)
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .flatten()
}

async fn mount_wordpress_feeds(server: &MockServer) {
    let base = server.uri();
    Mock::given(method("GET"))
        .and(path("/feed/"))
        .and(header("if-none-match", "\"feed-v1\""))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/feed/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(
                    fixture("wp-feed.xml", &base),
                    "application/rss+xml; charset=UTF-8",
                )
                .insert_header("ETag", "\"feed-v1\"")
                .insert_header("Last-Modified", "Tue, 24 Nov 2026 09:12:40 GMT"),
        )
        .mount(server)
        .await;
    for (at, file) in [
        ("/2026/11/24/lighthouse-ledger/feed/", "wp-comments-11.xml"),
        ("/2026/11/20/harbour-walls/feed/", "wp-comments-12.xml"),
        ("/comments/feed/", "wp-comments-site.xml"),
    ] {
        Mock::given(method("GET"))
            .and(path(at))
            .and(header("if-modified-since", "Wed, 25 Nov 2026 12:00:00 GMT"))
            .respond_with(ResponseTemplate::new(304))
            .with_priority(1)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path(at))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(fixture(file, &base), "application/rss+xml; charset=UTF-8")
                    .insert_header("Last-Modified", "Wed, 25 Nov 2026 12:00:00 GMT"),
            )
            .mount(server)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wordpress_feeds_gather_essays_and_comments_then_only_ask_conditionally() {
    let server = MockServer::start().await;
    mount_wordpress_feeds(&server).await;
    let site = site_with(&format!(
            "[[source]]\nname = \"blog\"\ntype = \"feed\"\nallow_private = true\nurl = \"{0}/feed/\"\ncomments_url = \"{0}/comments/feed/\"",
            server.uri()
        ));
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "source `blog`: 2 new essays, 4 new replies"
    );

    let essays = rows(&site, "SELECT title, author, published_at, summary, content_html FROM essay ORDER BY published_at");
    assert_eq!(essays[0][0].as_deref(), Some("On Harbour Walls"));
    assert_eq!(
        essays[1][0].as_deref(),
        Some("The Lighthouse Keeper’s Ledger"),
        "entity decoded"
    );
    assert_eq!(essays[1][1].as_deref(), Some("Ines Alvarez"), "dc:creator");
    assert_eq!(essays[1][2].as_deref(), Some("2026-11-24T09:12:40.000000Z"));
    let content = essays[1][4].clone().unwrap();
    assert!(
        content.contains(&format!("href=\"{}/archive/ledger/\"", server.uri())),
        "relative link resolved: {content}"
    );

    // Comments land under their essays: per-essay feeds and the site-wide feed, deduplicated.
    let replies = rows(
        &site,
        "SELECT r.author, e.title, r.content_html FROM reply r JOIN essay e ON e.key = r.essay_key ORDER BY r.published_at",
    );
    let placed: Vec<(Option<String>, Option<String>)> = replies
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(
        placed,
        vec![
            (None, Some("On Harbour Walls".into())),
            (
                Some("Priya".into()),
                Some("The Lighthouse Keeper’s Ledger".into())
            ),
            (
                Some("Ines Alvarez".into()),
                Some("The Lighthouse Keeper’s Ledger".into())
            ),
            (Some("Tomasz".into()), Some("On Harbour Walls".into())),
        ]
    );
    assert!(
        !replies[1][2].clone().unwrap().contains("  "),
        "messy spacing tidied"
    );

    // Second run: every URL is asked conditionally and answers 304; nothing is new.
    let before = server.received_requests().await.unwrap().len();
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "source `blog`: 0 new essays, 0 new replies"
    );
    let requests = server.received_requests().await.unwrap();
    let second = &requests[before..];
    assert_eq!(second.len(), 4, "{second:?}");
    for r in second {
        let conditional =
            r.headers.contains_key("if-none-match") || r.headers.contains_key("if-modified-since");
        assert!(conditional, "unconditional request to {}", r.url);
        let ua = r.headers.get("user-agent").unwrap().to_str().unwrap();
        assert!(
            ua.starts_with("Gazette/") && ua.contains("https://review.example.org"),
            "{ua}"
        );
    }
}

/// WordPress's Last-Modified (and the ETag it hashes from it) is the newest comment's
/// time to the second. A comment written in the second of a fetch leaves both unchanged,
/// so the feed answers a conditional request 304 for as long as nothing newer comes: the
/// validators of a response that recent must not be sent back.
#[tokio::test(flavor = "multi_thread")]
async fn a_comment_written_in_the_second_of_the_last_fetch_is_not_hidden_by_a_304() {
    let server = MockServer::start().await;
    let base = server.uri();
    serve(
        &server,
        "/feed/",
        fixture("wp-feed.xml", &base),
        "application/rss+xml; charset=UTF-8",
    )
    .await;
    let now = gazette::time::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let v1 = fixture("wp-comments-site.xml", &base);
    let v2 = v1.replacen(
        "\t<item>",
        &format!(
            "\t<item>\n\t\t<title>Comment on On Harbour Walls by Ines</title>\n\t\t<link>{base}/2026/11/20/harbour-walls/#comment-9</link>\n\t\t<dc:creator><![CDATA[Ines]]></dc:creator>\n\t\t<pubDate>Wed, 25 Nov 2026 12:00:00 +0000</pubDate>\n\t\t<guid isPermaLink=\"false\">{base}/?p=12#comment-9</guid>\n\t\t<content:encoded><![CDATA[<p>Written in the same second.</p>]]></content:encoded>\n\t</item>\n\t<item>"
        ),
        1,
    );
    let etag = "\"5d41402abc4b2a76b9719d911017c592\"";
    Mock::given(method("GET"))
        .and(path("/comments/feed/"))
        .and(header("if-none-match", etag))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    for (body, times) in [(v1, Some(1)), (v2, None)] {
        let mut mock = Mock::given(method("GET"))
            .and(path("/comments/feed/"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(body, "application/rss+xml; charset=UTF-8")
                    .insert_header("ETag", etag)
                    .insert_header("Last-Modified", now.as_str()),
            );
        if let Some(n) = times {
            mock = mock.up_to_n_times(n).with_priority(2);
        } else {
            mock = mock.with_priority(3);
        }
        mock.mount(&server).await;
    }
    let site = site_with(&format!(
        "[[source]]\nname = \"blog\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/feed/\"\ncomments_url = \"{base}/comments/feed/\"\ncomment_feeds = false"
    ));
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "source `blog`: 2 new essays, 2 new replies"
    );
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "source `blog`: 0 new essays, 1 new reply",
        "the same-second comment"
    );
    assert_eq!(
        one(
            &site,
            "SELECT author FROM reply WHERE content_html LIKE '%same second%'"
        )
        .as_deref(),
        Some("Ines")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guid_that_flips_to_https_or_an_edited_title_is_not_new() {
    let server = MockServer::start().await;
    let base = server.uri();
    Mock::given(method("GET"))
        .and(path("/feed/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("wp-feed.xml", &base), "application/rss+xml"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let flipped = fixture("wp-feed.xml", &base)
        .replace(
            "<guid isPermaLink=\"false\">http://",
            "<guid isPermaLink=\"false\">https://",
        )
        .replace("On Harbour Walls", "On Harbour Walls (revised)");
    serve(&server, "/feed/", flipped, "application/rss+xml").await;
    let site = site_with(&format!(
            "[[source]]\nname = \"blog\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/feed/\"\ncomment_feeds = false"
        ));
    assert_eq!(
        site.gazette_async(&["gather"]).await.stdout.trim(),
        "source `blog`: 2 new essays, 0 new replies"
    );
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(
        run.stdout.trim(),
        "source `blog`: 0 new essays, 0 new replies",
        "{}",
        run.stderr
    );
    assert_eq!(site.count("SELECT COUNT(*) FROM essay"), 2);
    assert_eq!(
        one(
            &site,
            "SELECT COUNT(*) FROM essay WHERE title = 'On Harbour Walls (revised)'"
        )
        .as_deref(),
        None.or(Some("1")),
        "the stored essay took the new title"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn atom_threads_and_json_feed() {
    let server = MockServer::start().await;
    let base = server.uri();
    serve(
        &server,
        "/atom.xml",
        fixture("atom.xml", &base),
        "application/atom+xml",
    )
    .await;
    serve(
        &server,
        "/posts/salt-and-memory/replies.xml",
        fixture("atom-replies.xml", &base),
        "application/atom+xml",
    )
    .await;
    serve(
        &server,
        "/feed.json",
        fixture("feed.json", &base),
        "application/feed+json",
    )
    .await;
    let site = site_with(&format!(
            "[[source]]\nname = \"atom\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/atom.xml\"\n\n[[source]]\nname = \"json\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/feed.json\""
        ));
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("source `atom`: 1 new essay, 2 new replies"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("source `json`: 2 new essays, 0 new replies"),
        "{}",
        run.stdout
    );

    let atom = rows(
        &site,
        "SELECT title, author, published_at, summary FROM essay WHERE source = 'atom'",
    );
    assert_eq!(atom[0][0].as_deref(), Some("Salt & Memory"));
    assert_eq!(atom[0][1].as_deref(), Some("Dana Whit"));
    assert_eq!(
        atom[0][2].as_deref(),
        Some("2026-11-23T08:00:00.000000Z"),
        "converted to UTC"
    );
    assert_eq!(
        atom[0][3].as_deref(),
        Some("Salt keeps things. So does memory.")
    );
    let threads = rows(
        &site,
        "SELECT key, parent_key, author FROM reply WHERE source = 'atom' ORDER BY published_at",
    );
    assert_eq!(
        threads[0][0].as_deref(),
        Some("tag:tidewater.example,2026:reply-1")
    );
    assert_eq!(threads[0][1], None, "answers the essay");
    assert_eq!(
        threads[1][1].as_deref(),
        Some("tag:tidewater.example,2026:reply-1"),
        "answers reply 1"
    );

    let json = rows(
        &site,
        "SELECT title, author, published_at FROM essay WHERE source = 'json' ORDER BY published_at",
    );
    assert_eq!(json[0][0].as_deref(), Some("Night Ferries"));
    assert_eq!(json[0][1].as_deref(), Some("Ruth Nakamura"));
    assert_eq!(json[0][2].as_deref(), Some("2026-11-23T02:00:00.000000Z"));
    assert_eq!(json[1][0].as_deref(), Some("Fog"));
    assert_eq!(json[1][1], None);
}

async fn mount_wordpress_rest(server: &MockServer) {
    let base = server.uri();
    // The home page names the REST root, as every WordPress page does.
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("<!DOCTYPE html><html></html>", "text/html; charset=UTF-8")
                .insert_header(
                    "Link",
                    format!("<{base}/wp-json/>; rel=\"https://api.w.org/\""),
                ),
        )
        .mount(server)
        .await;
    // The first gather reads full pages (with `_embed`); repeat gathers list ids first
    // (`_fields=id,modified_gmt`), and the same pages carry those fields among the others.
    for (param, value) in [("_embed", "author"), ("_fields", "id,modified_gmt")] {
        for (page, file) in [("1", "wp-posts-page1.json"), ("2", "wp-posts-page2.json")] {
            Mock::given(method("GET"))
                .and(path("/wp-json/wp/v2/posts"))
                .and(query_param("page", page))
                .and(query_param(param, value))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_raw(fixture(file, &base), "application/json; charset=UTF-8")
                        .insert_header("X-WP-Total", "3")
                        .insert_header("X-WP-TotalPages", "2"),
                )
                .mount(server)
                .await;
        }
    }
    Mock::given(method("GET"))
        .and(path("/wp-json/wp/v2/posts"))
        .and(query_param("include", "90"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("wp-post-90.json", &base), "application/json"),
        )
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wp/v2/comments"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("wp-comments-page1.json", &base), "application/json")
                .insert_header("X-WP-TotalPages", "1"),
        )
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wordpress_rest_pages_embeds_authors_threads_replies_and_asks_only_for_changes() {
    let server = MockServer::start().await;
    mount_wordpress_rest(&server).await;
    let site = site_with(&format!(
        "[[source]]\nname = \"wp\"\ntype = \"wordpress\"\nallow_private = true\nbase_url = \"{}\"",
        server.uri()
    ));
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "source `wp`: 3 new essays, 4 new replies"
    );

    let essays = rows(
        &site,
        "SELECT title, author, published_at, backfill FROM essay ORDER BY published_at",
    );
    let titles: Vec<_> = essays.iter().map(|e| e[0].clone().unwrap()).collect();
    assert_eq!(
        titles,
        vec!["An Old Post", "Tides", "Nets & Knots", "The Weather Diary"]
    );
    assert_eq!(
        essays[0][3].as_deref(),
        Some("1"),
        "fetched only to place a comment: archive"
    );
    assert_eq!(
        essays[3][1].as_deref(),
        Some("Hanne Berg"),
        "embedded author"
    );
    assert_eq!(
        essays[3][2].as_deref(),
        Some("2026-11-25T09:00:00.000000Z"),
        "date_gmt"
    );
    let nested = rows(
        &site,
        "SELECT key, parent_key, author FROM reply WHERE key LIKE '%comment-22'",
    );
    assert!(
        nested[0][1]
            .as_deref()
            .unwrap()
            .ends_with("/?p=101#comment-21"),
        "{nested:?}"
    );
    assert_eq!(
        one(
            &site,
            "SELECT author FROM reply WHERE key LIKE '%comment-21'"
        ),
        None,
        "empty author_name"
    );
    // Keys match what WordPress's own feeds would give, so API and feeds agree.
    let key = one(&site, "SELECT key FROM essay WHERE title = 'Tides'").unwrap();
    assert_eq!(
        key,
        format!("{}/?p=101", server.uri().trim_start_matches("http://"))
    );

    // The home page once (for the REST root), then one request per page, none per
    // essay for authors.
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests.len(),
        5,
        "{:?}",
        requests
            .iter()
            .map(|r| r.url.to_string())
            .collect::<Vec<_>>()
    );

    // Later gathers ask only for what changed since the last success.
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(
        run.stdout.trim(),
        "source `wp`: 0 new essays, 0 new replies",
        "{}",
        run.stderr
    );
    let requests = server.received_requests().await.unwrap();
    let later: Vec<String> = requests[5..].iter().map(|r| r.url.to_string()).collect();
    assert!(
        later
            .iter()
            .any(|u| u.contains("/posts?") && u.contains("modified_after=")),
        "{later:?}"
    );
    assert!(
        later
            .iter()
            .any(|u| u.contains("/comments?") && u.contains("after=")),
        "{later:?}"
    );

    // The digest groups each reply under its essay, threaded.
    let run = site.gazette_async(&["send"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mail = &site.outbox()[0];
    let text = &mail.text;
    let tides = text.find("On \"Tides\"").expect(text);
    let anon = text[tides..].find("* Anonymous reader:").expect(text) + tides;
    let answer = text[anon..].find("    * Hanne Berg replied:").expect(text) + anon;
    assert!(tides < anon && anon < answer);
    assert!(
        text.contains("On \"An Old Post\""),
        "a reply to an archived essay is news, the essay is not"
    );
    assert!(
        !text.contains("AN OLD POST"),
        "the archived essay is not listed as new: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wordpress_without_rest_api_falls_back_to_feeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wp/v2/posts"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_raw("{\"code\":\"rest_no_route\"}", "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("<!DOCTYPE html><html></html>", "text/html")
                .insert_header(
                    "Link",
                    format!("<{}/wp-json/>; rel=\"https://api.w.org/\"", server.uri()),
                ),
        )
        .mount(&server)
        .await;
    mount_wordpress_feeds(&server).await;
    // The fallback reads the Atom feeds (they carry threads); this site serves its RSS
    // documents there, which parse the same.
    let base = server.uri();
    for (at, file) in [
        ("/feed/atom/", "wp-feed.xml"),
        ("/comments/feed/atom/", "wp-comments-site.xml"),
    ] {
        serve(&server, at, fixture(file, &base), "application/rss+xml").await;
    }
    let site = site_with(&format!(
        "[[source]]\nname = \"wp\"\ntype = \"wordpress\"\nallow_private = true\nbase_url = \"{}\"",
        server.uri()
    ));
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "source `wp`: 2 new essays, 4 new replies"
    );
    assert!(
        run.stderr
            .contains("Source gathered on its fallback route.")
            && run.stderr.contains("wp/v2/posts")
            && run.stderr.contains("the server answered 404"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_503_with_retry_after_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/feed.json"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    serve(
        &server,
        "/feed.json",
        fixture("feed.json", &server.uri()),
        "application/feed+json",
    )
    .await;
    let site = site_with(&format!(
        "[[source]]\nname = \"json\"\ntype = \"feed\"\nallow_private = true\nurl = \"{}/feed.json\"",
        server.uri()
    ));
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "source `json`: 2 new essays, 0 new replies"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_sources_fail_alone_and_nothing_hostile_reaches_a_message() {
    let server = MockServer::start().await;
    let base = server.uri();
    serve(
        &server,
        "/hostile.xml",
        fixture("hostile.xml", &base),
        "application/rss+xml",
    )
    .await;
    serve(
        &server,
        "/good.json",
        fixture("feed.json", &base),
        "application/feed+json",
    )
    .await;
    let huge = format!(
        "<rss><channel><title>{}</title></channel></rss>",
        "x".repeat(20 * 1024 * 1024)
    );
    serve(&server, "/huge.xml", huge, "application/rss+xml").await;
    let full = fixture("wp-feed.xml", &base);
    serve(
        &server,
        "/truncated.xml",
        full[..full.len() / 2].to_owned(),
        "application/rss+xml",
    )
    .await;
    serve(
        &server,
        "/lol.xml",
        fixture("billion-laughs.xml", &base),
        "application/rss+xml",
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/moved.xml"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", "ftp://files.example.org/feed.xml"),
        )
        .mount(&server)
        .await;
    // Declares ISO-8859-1 and is ISO-8859-1, but the server claims UTF-8.
    let mut latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss version=\"2.0\"><channel><title>c</title><link>".to_vec();
    latin1.extend_from_slice(base.as_bytes());
    latin1.extend_from_slice(b"</link><description>d</description><item><title>Caf\xe9 Society</title><guid>latin-1</guid><description>Cr\xe8me</description></item></channel></rss>");
    Mock::given(method("GET"))
        .and(path("/latin1.xml"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(latin1, "application/rss+xml; charset=utf-8"),
        )
        .mount(&server)
        .await;

    let sources: String = [
        ("hostile", "hostile.xml"),
        ("good", "good.json"),
        ("huge", "huge.xml"),
        ("truncated", "truncated.xml"),
        ("lol", "lol.xml"),
        ("moved", "moved.xml"),
        ("latin1", "latin1.xml"),
    ]
    .iter()
    .map(|(n, f)| format!("[[source]]\nname = \"{n}\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/{f}\"\ncomment_feeds = false\n\n"))
    .collect();
    let site = site_with(&sources);
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(
        run.code, 2,
        "some sources failed\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("source `good`: 2 new essays"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("source `hostile`: 1 new essay, "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("source `latin1`: 1 new essay, "),
        "{}",
        run.stdout
    );
    let failed = |name: &str, url: &str, why: &str| {
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains(&format!("source `{name}` failed")))
            .unwrap_or_else(|| panic!("no error for {name}:\n{}", run.stderr));
        assert!(line.contains(&format!("{base}/{url}")), "{line}");
        assert!(line.contains(why), "{line}");
    };
    failed("huge", "huge.xml", "larger than the 10485760-byte limit");
    failed("truncated", "truncated.xml", "not a valid RSS or Atom feed");
    failed("moved", "moved.xml", "ftp: URLs are never fetched");
    // The entity bomb is refused or comes out inert; either way nothing exploded.
    if run.stderr.contains("source `lol` failed") {
        failed("lol", "lol.xml", "not a valid");
    } else {
        assert!(
            one(
                &site,
                "SELECT MAX(LENGTH(title)) FROM essay WHERE source = 'lol'"
            )
            .map_or(0, |n| n.parse::<usize>().unwrap())
                < 10_000
        );
    }
    assert_eq!(
        one(&site, "SELECT title FROM essay WHERE source = 'latin1'").as_deref(),
        Some("Café Society")
    );
    let err = one(
        &site,
        "SELECT last_error FROM source_state WHERE source = 'huge'",
    )
    .unwrap();
    assert!(err.contains("huge.xml"), "{err}");

    let run = site.gazette_async(&["send"]).await;
    assert_eq!(run.code, 2, "sent, but sources still fail: {}", run.stderr);
    let mail = &site.outbox()[0];
    for part in [&mail.html, &mail.text] {
        let lower = part.to_lowercase();
        for bad in [
            "<script",
            "onerror",
            "onclick",
            "javascript:",
            "<iframe",
            "alert('body')",
            "alert('img')",
        ] {
            assert!(!lower.contains(bad), "{bad} in\n{part}");
        }
    }
    assert!(mail.text.contains("A FINE TITLE"), "{}", mail.text);
    assert!(
        mail.text.contains("Eve"),
        "the author's name without its markup: {}",
        mail.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_comment_feed_does_not_block_the_essays() {
    let server = MockServer::start().await;
    let base = server.uri();
    serve(
        &server,
        "/feed/",
        fixture("wp-feed.xml", &base),
        "application/rss+xml",
    )
    .await;
    serve(
        &server,
        "/2026/11/20/harbour-walls/feed/",
        fixture("wp-comments-12.xml", &base),
        "application/rss+xml",
    )
    .await;
    // The other essay's comment feed is gone (404 by default in wiremock).
    let site = site_with(&format!(
        "[[source]]\nname = \"blog\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/feed/\""
    ));
    let run = site.gazette_async(&["gather"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "source `blog`: 2 new essays, 1 new reply"
    );
    assert!(run.stderr.contains("Comment feed failed"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("lighthouse-ledger/feed/: the server answered 404"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_responses_are_decompressed_and_requests_per_host_are_limited() {
    use std::io::Write;
    let server = MockServer::start().await;
    let base = server.uri();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(fixture("feed.json", &base).as_bytes())
        .unwrap();
    let body = gz.finish().unwrap();
    // Every feed answers slowly, so overlapping requests would be visible.
    let sources: String = (0..6)
        .map(|i| {
            format!("[[source]]\nname = \"s{i}\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/s{i}.json\"\n\n")
        })
        .collect();
    for i in 0..6 {
        Mock::given(method("GET"))
            .and(path(format!("/s{i}.json")))
            .and(wiremock::matchers::header_regex("accept-encoding", "gzip"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(body.clone(), "application/feed+json")
                    .insert_header("Content-Encoding", "gzip")
                    .set_delay(std::time::Duration::from_millis(300)),
            )
            .mount(&server)
            .await;
    }
    let site = site_with(&sources);
    site.edit("config.toml", "retries = 2", "retries = 2\nper_host = 2");
    let started = std::time::Instant::now();
    let run = site.gazette_async(&["gather"]).await;
    let elapsed = started.elapsed();
    assert_eq!(run.code, 0, "{}", run.stderr);
    for i in 0..6 {
        assert!(
            run.stdout.contains(&format!("source `s{i}`: 2 new essays")),
            "{}",
            run.stdout
        );
    }
    // Six 300 ms responses, two at a time to the one host: at least three rounds. This is
    // a lower bound that only holds if the limit works, not a speed target.
    assert!(
        elapsed >= std::time::Duration::from_millis(900),
        "per-host limit not applied: {elapsed:?}"
    );
}
