//! Gathering benchmark (issue 3): parse, normalise and store one 1,000-item ~5 MB feed,
//! then gather 50 feed sources from a local HTTP server, first fresh and then again when
//! every URL answers 304. Run with `cargo bench --bench gather`; prints the median of 5.

use std::time::{Duration, Instant};

use gazette::source::feed;
use gazette::source::{Essay, Gathered};
use gazette::store::Store;
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn big_feed(items: usize, base: &str) -> String {
    let paragraph = "<p>The harbour wall was built in 1887 and rebuilt, stone by stone, after \
        every winter that broke it. The ledger records each repair, who paid, and what the \
        sea took in return; reading it now is like reading a long argument between two \
        patient parties.  Neither  has  won.</p>";
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\" \
         xmlns:content=\"http://purl.org/rss/1.0/modules/content/\" \
         xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
         xmlns:wfw=\"http://wellformedweb.org/CommentAPI/\"><channel><title>Bench</title>",
    );
    for i in 0..items {
        out.push_str(&format!(
            "<item><title>Essay number {i} &#8217;on walls&#8217;</title><link>{base}/essays/{i}/</link>\
             <guid isPermaLink=\"false\">{base}/?p={i}</guid><dc:creator><![CDATA[Author {a}]]></dc:creator>\
             <pubDate>Tue, 24 Nov 2026 09:12:40 +0000</pubDate><description><![CDATA[Summary of essay {i}.]]></description>\
             <content:encoded><![CDATA[{body}<p><a href=\"/essays/{i}/more\">more</a> <script>x()</script></p>]]></content:encoded>\
             <wfw:commentRss>{base}/essays/{i}/feed/</wfw:commentRss></item>",
            a = i % 17,
            body = paragraph.repeat(16),
        ));
    }
    out.push_str("</channel></rss>");
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn parse_and_store() {
    let xml = big_feed(1000, "https://bench.example.org");
    let mut runs = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&dir.path().join("bench.db")).expect("store");
        let start = Instant::now();
        let items = feed::parse(xml.as_bytes(), "https://bench.example.org/feed/").expect("parses");
        let gathered = Gathered {
            essays: items
                .into_iter()
                .map(|i| Essay {
                    source: "bench".into(),
                    key: i.key,
                    title: i.title,
                    author: i.author,
                    url: i.url,
                    published_at: i.published_at,
                    updated_at: i.updated_at,
                    summary: i.summary,
                    content_html: i.content_html,
                    origin_id: None,
                })
                .collect(),
            ..Gathered::default()
        };
        let added = store
            .upsert_gathered("bench", &gathered, gazette::time::now())
            .expect("stored");
        assert_eq!(added.essays, 1000);
        runs.push(start.elapsed());
    }
    let m = median(runs);
    println!(
        "parse+normalise+store 1,000 items ({:.1} MB): median {:.0} ms ({:.0} items/s)",
        xml.len() as f64 / 1e6,
        m.as_secs_f64() * 1e3,
        1000.0 / m.as_secs_f64()
    );
}

async fn fifty_sources() {
    let server = MockServer::start().await;
    let base = server.uri();
    Mock::given(method("GET"))
        .and(header_exists("if-none-match"))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    for s in 0..50 {
        Mock::given(method("GET"))
            .and(path(format!("/s{s}/feed/")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(big_feed(20, &format!("{base}/s{s}")), "application/rss+xml")
                    .insert_header("ETag", format!("\"s{s}\"")),
            )
            .mount(&server)
            .await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let sources: String = (0..50)
        .map(|s| format!("[[source]]\nname = \"s{s}\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/s{s}/feed/\"\ncomment_feeds = false\n\n"))
        .collect();
    let cfg_path = dir.path().join("config.toml");
    std::fs::create_dir_all(dir.path().join("templates/default")).expect("dir");
    for f in ["digest.html", "digest.txt"] {
        std::fs::write(dir.path().join("templates/default").join(f), "x").expect("write");
    }
    std::fs::write(
        &cfg_path,
        format!(
            "[site]\nname = \"Bench\"\nbase_url = \"https://bench.example.org\"\nfrom = \"Bench <b@bench.example.org>\"\n\n[http]\nper_host = 8\n\n{sources}[[digest]]\nname = \"all\"\nschedule = \"@daily\"\n"
        ),
    )
    .expect("config");
    let config = gazette::config::load(&cfg_path).expect("valid config");
    let mut store = Store::open(&config.state_path).expect("store");
    let start = Instant::now();
    let first = gazette::pipeline::gather(&config, &mut store, gazette::time::now())
        .await
        .expect("gathered");
    let fresh = start.elapsed();
    assert!(first.iter().all(|g| g.result.is_ok()));
    let mut again = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let out = gazette::pipeline::gather(&config, &mut store, gazette::time::now())
            .await
            .expect("gathered");
        assert!(out
            .iter()
            .all(|g| g.result.as_ref().is_ok_and(|a| a.essays == 0)));
        again.push(start.elapsed());
    }
    println!(
        "gather 50 feed sources x 20 items from a local server: fresh {:.0} ms; unchanged (all 304) median {:.0} ms",
        fresh.as_secs_f64() * 1e3,
        median(again).as_secs_f64() * 1e3
    );
}

fn main() {
    parse_and_store();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(fifty_sources());
}
