//! Feeds as they are in the wild (issue 12), served from a local 127.0.0.1 server and
//! gathered by the real binary. The documents are written in the shapes WordPress,
//! Blogger and the JSON Feed plugins emit, quirks included: undated and oddly dated
//! items, comment paging links, "In reply to" lines, a site-wide Atom comment feed with
//! the wrong `thr:in-reply-to`, Latin-1 and UTF-16 bytes, version-less RSS.

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::Site;

pub(crate) fn rfc822(days_ago: i64) -> String {
    (gazette::time::now() - chrono::Duration::days(days_ago))
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

pub(crate) async fn serve_bytes(server: &MockServer, at: &str, body: Vec<u8>, mime: &str) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, mime))
        .mount(server)
        .await;
}

pub(crate) fn site_with(sources: &str) -> Site {
    let site = Site::new();
    site.write(
        "config.toml",
        &format!(
            r#"[site]
name = "Wild Review"
base_url = "https://review.example.org"
from = "Wild Review <digest@review.example.org>"

[http]
retries = 0
timeout = "10s"

{sources}

[[digest]]
name = "all"
schedule = "@daily"
subject = "{{{{ essays | length }}}} essays, {{{{ reply_count }}}} replies"
first_edition_lookback = "7d"

[[subscriber]]
email = "reader@example.org"
name = "Reader"
"#
        ),
    );
    site
}

pub(crate) fn rss(base: &str, items: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"
	xmlns:content="http://purl.org/rss/1.0/modules/content/"
	xmlns:wfw="http://wellformedweb.org/CommentAPI/"
	xmlns:dc="http://purl.org/dc/elements/1.1/"
	xmlns:atom="http://www.w3.org/2005/Atom"
	xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"
	xmlns:slash="http://purl.org/rss/1.0/modules/slash/"
	>
<channel>
	<title>Harbour Notes</title>
	<atom:link href="{base}/feed/" rel="self" type="application/rss+xml" />
	<link>{base}</link>
	<description>Essays from the island</description>
	<generator>https://wordpress.org/?v=6.1.1</generator>
{items}
</channel>
</rss>
"#
    )
}

pub(crate) fn post(base: &str, id: u32, slug: &str, title: &str, date: &str, body: &str) -> String {
    format!(
        r#"	<item>
		<title>{title}</title>
		<link>{base}/2026/11/{slug}/</link>
		<dc:creator><![CDATA[Hanne Berg]]></dc:creator>
		{date}
		<guid isPermaLink="false">{base}/?p={id}</guid>
		<description><![CDATA[{body}]]></description>
		<content:encoded><![CDATA[{body}]]></content:encoded>
	</item>
"#
    )
}

pub(crate) fn gather(site: &Site) -> (i32, String, String) {
    let run = site.gazette(&["gather"]);
    (run.code, run.stdout.trim().to_owned(), run.stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_source_whose_items_have_no_readable_dates_sends_nothing_first() {
    let server = MockServer::start().await;
    let base = server.uri();
    let archive: String = (1..=30)
        .map(|i| {
            let date = match i % 3 {
                0 => String::new(),
                // What a broken generator writes, and a translated date.
                1 => "<pubDate>sometime</pubDate>".into(),
                _ => "<pubDate>mar., 24 déc. 2019 12:00:00 +0100</pubDate>".into(),
            };
            post(
                &base,
                i,
                &format!("old-{i}"),
                &format!("Archive {i}"),
                &date,
                "<p>Old.</p>",
            )
        })
        .collect();
    // A valid pubDate beside an unreadable dc:date: the valid one is used.
    let dated = post(
        &base,
        99,
        "recent",
        "Recent essay",
        &format!(
            "<dc:date>not a date</dc:date><pubDate>{}</pubDate>",
            rfc822(1)
        ),
        "<p>Recent.</p>",
    );
    serve_bytes(
        &server,
        "/feed/",
        rss(&base, &format!("{dated}{archive}")).into_bytes(),
        "application/rss+xml",
    )
    .await;
    let site = site_with(&format!(
        "[[source]]\nname = \"blog\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/feed/\"\ncomment_feeds = false"
    ));
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = site.outbox();
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].subject, "1 essays, 0 replies",
        "only the dated recent essay"
    );
    assert!(first[0].html.contains("Recent essay"));
    assert!(
        !first[0].html.contains("Archive"),
        "the undated archive is not news"
    );

    // An undated item that appears later is new when first seen.
    let later = post(
        &base,
        100,
        "fresh",
        "Fresh undated essay",
        "",
        "<p>New.</p>",
    );
    server.reset().await;
    serve_bytes(
        &server,
        "/feed/",
        rss(&base, &format!("{later}{dated}{archive}")).into_bytes(),
        "application/rss+xml",
    )
    .await;
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let second = site.outbox_matching("all-0002-");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].subject, "1 essays, 0 replies");
    assert!(second[0].html.contains("Fresh undated essay"));
}

#[tokio::test(flavor = "multi_thread")]
async fn site_wide_comment_feeds_with_comment_paging_place_and_thread_every_reply() {
    let server = MockServer::start().await;
    let base = server.uri();
    let recent = rfc822(1);
    let essays = format!(
        "{}{}",
        post(
            &base,
            11,
            "lighthouse-ledger",
            "The Lighthouse Keeper&#8217;s Ledger",
            &format!("<pubDate>{recent}</pubDate>"),
            "<p>Ledger.</p>"
        ),
        post(
            &base,
            12,
            "harbour-walls",
            "On Harbour Walls",
            &format!("<pubDate>{recent}</pubDate>"),
            "<p>Walls.</p>"
        ),
    );
    serve_bytes(
        &server,
        "/feed/",
        rss(&base, &essays).into_bytes(),
        "application/rss+xml",
    )
    .await;
    // WordPress's RSS comment feed with comment paging on: links go to comment-page-N,
    // and a child comment starts with its "In reply to" line.
    let comment = |id: u32, post: u32, slug: &str, page: u32, who: &str, text: &str| {
        format!(
            r#"	<item>
		<title>Comment on {slug} by {who}</title>
		<link>{base}/2026/11/{slug}/comment-page-{page}/#comment-{id}</link>
		<dc:creator><![CDATA[{who}]]></dc:creator>
		<pubDate>{recent}</pubDate>
		<guid isPermaLink="false">{base}/?p={post}#comment-{id}</guid>
		<description><![CDATA[{text}]]></description>
		<content:encoded><![CDATA[{text}]]></content:encoded>
	</item>
"#
        )
    };
    let comments = format!(
        "{}{}{}",
        comment(123, 11, "lighthouse-ledger", 2, "Priya", "<p>My grandfather kept one of these.</p>\n"),
        comment(
            124,
            11,
            "lighthouse-ledger",
            2,
            "Tomasz",
            &format!("<p>In reply to <a href=\"{base}/2026/11/lighthouse-ledger/comment-page-2/#comment-123\">Priya</a>.</p>\n<p>Mine too, every morning.</p>\n")
        ),
        comment(130, 13, "not-yet-in-the-feed", 1, "Early", "<p>First on the new essay.</p>\n"),
    );
    serve_bytes(
        &server,
        "/comments/feed/",
        rss(&base, &comments).into_bytes(),
        "application/rss+xml",
    )
    .await;
    // Old WordPress wrote the latest post's id into every entry's thr:in-reply-to.
    let atom = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0" xml:lang="en">
	<title type="text">Comments on Harbour Notes</title>
	<id>{base}/comments/feed/atom/</id>
	<updated>2026-11-25T12:00:00Z</updated>
	<entry>
		<title>By: Ines</title>
		<link rel="alternate" href="{base}/2026/11/harbour-walls/#comment-140" type="text/html" />
		<author><name>Ines</name></author>
		<id>{base}/?p=12#comment-140</id>
		<updated>2026-11-25T12:00:00Z</updated>
		<published>2026-11-25T12:00:00Z</published>
		<content type="html"><![CDATA[<p>Walls are where people sit.</p>]]></content>
		<thr:in-reply-to ref="{base}/?p=11" href="{base}/2026/11/lighthouse-ledger/" type="text/html" />
	</entry>
</feed>
"#
    );
    serve_bytes(
        &server,
        "/comments/feed/atom/",
        atom.into_bytes(),
        "application/atom+xml",
    )
    .await;
    let site = site_with(&format!(
        "[[source]]\nname = \"blog\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/feed/\"\ncomments_url = \"{base}/comments/feed/\"\ncomment_feeds = false\n\n\
         [[source]]\nname = \"atom\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/feed/\"\ncomments_url = \"{base}/comments/feed/atom/\"\ncomment_feeds = false"
    ));
    let (code, out, err) = gather(&site);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("source `blog`: 2 new essays, 2 new replies, 1 reply not placed yet"),
        "{out}"
    );
    assert!(
        out.contains("source `atom`: 2 new essays, 1 new reply"),
        "{out}"
    );
    let essay_of = |text: &str| -> String {
        site.db()
            .query_row(
                "SELECT essay.title FROM reply JOIN essay ON essay.key = reply.essay_key AND essay.source = reply.source WHERE reply.content_html LIKE ?1",
                [format!("%{text}%")],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(essay_of("grandfather"), "The Lighthouse Keeper’s Ledger");
    assert_eq!(
        essay_of("Walls are where"),
        "On Harbour Walls",
        "own link and id win"
    );
    let (parent, body): (Option<String>, String) = site
        .db()
        .query_row(
            "SELECT parent_key, content_html FROM reply WHERE content_html LIKE '%every morning%'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(parent.unwrap().ends_with("/?p=11#comment-123"));
    assert!(!body.contains("In reply to"), "{body}");
    let status = site.gazette(&["status"]);
    assert!(
        status.stdout.contains("1 reply not placed yet"),
        "{}",
        status.stdout
    );

    // The essay arrives, the comment feed has moved on: the kept reply is placed.
    let third = post(
        &base,
        13,
        "not-yet-in-the-feed",
        "Not Yet In The Feed",
        &format!("<pubDate>{recent}</pubDate>"),
        "<p>New.</p>",
    );
    server.reset().await;
    serve_bytes(
        &server,
        "/feed/",
        rss(&base, &format!("{third}{essays}")).into_bytes(),
        "application/rss+xml",
    )
    .await;
    serve_bytes(
        &server,
        "/comments/feed/",
        rss(&base, "").into_bytes(),
        "application/rss+xml",
    )
    .await;
    serve_bytes(
        &server,
        "/comments/feed/atom/",
        rss(&base, "").into_bytes(),
        "application/rss+xml",
    )
    .await;
    let (code, out, err) = gather(&site);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("source `blog`: 1 new essay, 1 new reply\n")
            || out.starts_with("source `blog`: 1 new essay, 1 new reply"),
        "{out}"
    );
    assert_eq!(essay_of("First on the new essay"), "Not Yet In The Feed");

    // And the digest threads it, the "In reply to" line gone.
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = &site.outbox()[0].text;
    let priya = text.find("* Priya:").expect(text);
    let tomasz = text[priya..].find("    * Tomasz replied:").expect(text);
    assert!(tomasz > 0 && !text.contains("In reply to"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn what_readers_see_has_no_conversion_junk() {
    let server = MockServer::start().await;
    let base = server.uri();
    let recent = format!("<pubDate>{}</pubDate>", rfc822(1));
    let long_url = format!(
        "{base}/2026/11/a-rather-long-essay-slug-about-the-harbour-and-its-walls/#comment-1234"
    );
    let body = format!(
        "<p>The <strong>harbour</strong> wall is <em>resolved</em>, see <a href=\"{long_url}\">the long thread</a> and <a href=\"https://example.org/x\">https://example.org/x</a>.</p>"
    );
    // A WordPress excerpt ends in its "Read more" link.
    let items = format!(
        r#"	<item>
		<title>The &lt;em&gt;Beagle&lt;/em&gt; voyage</title>
		<link>{base}/2026/11/beagle/</link>
		<dc:creator><![CDATA[Hanne Berg]]></dc:creator>
		{recent}
		<guid isPermaLink="false">{base}/?p=1</guid>
		<description><![CDATA[<p>A summary with <b>bold</b> words&#8230; <a href="{base}/2026/11/beagle/">Read more &rarr;</a></p>]]></description>
		<content:encoded><![CDATA[{body}]]></content:encoded>
		<wfw:commentRss>{base}/2026/11/beagle/feed/</wfw:commentRss>
	</item>
	<item>
		<title>Why &lt;strong&gt; is not &lt;b&gt;</title>
		<link>{base}/2026/11/tags/</link>
		{recent}
		<guid isPermaLink="false">{base}/?p=2</guid>
		<content:encoded><![CDATA[{body}]]></content:encoded>
	</item>
	<item>
		<title></title>
		<link>{base}/2026/11/untitled/</link>
		{recent}
		<guid isPermaLink="false">{base}/?p=3</guid>
		<content:encoded><![CDATA[<p>Notes from the quay at dawn, when the boats come in and nobody speaks.</p>]]></content:encoded>
	</item>
"#
    );
    serve_bytes(
        &server,
        "/feed/",
        rss(&base, &items).into_bytes(),
        "application/rss+xml",
    )
    .await;
    let reply = format!(
        r#"	<item>
		<title>Comment on Beagle by Mara</title>
		<link>{base}/2026/11/beagle/#comment-5</link>
		<dc:creator><![CDATA[Mara]]></dc:creator>
		{recent}
		<guid isPermaLink="false">{base}/?p=1#comment-5</guid>
		<content:encoded><![CDATA[<p>Short and <strong>whole</strong>; see {long_url} too.</p>]]></content:encoded>
	</item>
"#
    );
    serve_bytes(
        &server,
        "/2026/11/beagle/feed/",
        rss(&base, &reply).into_bytes(),
        "application/rss+xml",
    )
    .await;
    let site = site_with(&format!(
        "[[source]]\nname = \"blog\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/feed/\""
    ));
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mail = &site.outbox()[0];
    let titles: Vec<String> = site
        .db()
        .prepare("SELECT title FROM essay ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        titles,
        vec![
            "The Beagle voyage".to_owned(),
            "Why <strong> is not <b>".to_owned(),
            "Notes from the quay at dawn, when the boats come…".to_owned()
        ]
    );
    let summary: String = site
        .db()
        .query_row(
            "SELECT summary FROM essay WHERE key LIKE '%?p=1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(summary, "A summary with bold words… Read more →");
    for part in [&mail.text, &mail.html] {
        for junk in ["][", "]: http", "**", "*resolved*"] {
            assert!(!part.contains(junk), "{junk} in:\n{part}");
        }
    }
    assert!(
        mail.html.contains("Why &lt;strong&gt; is not &lt;b&gt;"),
        "{}",
        mail.html
    );
    // No URL split across lines in the text part.
    assert!(
        mail.text
            .lines()
            .any(|l| l.trim().ends_with(&long_url) || l.trim() == long_url),
        "{}",
        mail.text
    );
    for line in mail.text.lines() {
        if line.contains("a-rather-long") {
            assert!(
                line.contains(&long_url),
                "split URL: {line:?}\n{}",
                mail.text
            );
        }
    }
    // The reply is short and shown whole: no "Read in full".
    assert!(!mail.html.contains("Read in full"), "{}", mail.html);
}

#[tokio::test(flavor = "multi_thread")]
async fn feeds_ordinary_readers_accept_parse_and_non_feeds_say_what_they_are() {
    let server = MockServer::start().await;
    let base = server.uri();
    let now = gazette::time::now().format("%Y-%m-%dT%H:%M").to_string();
    // The JSON Feed WordPress plugin: http:// version URL, numeric ids, 1.0 author.
    let json = format!(
        r#"{{"version":"http://jsonfeed.org/version/1","user_comment":"This feed allows you to read the posts from this site in any feed reader that supports the JSON Feed format.","title":"Plugin Blog","home_page_url":"{base}/","feed_url":"{base}/feed/json/","author":{{"name":"Site Owner"}},"items":[{{"id":"{base}/?p=7","url":"{base}/2026/11/json/","title":"From the plugin","content_html":"<p>Body.</p>","date_published":"{now}"}}]}}"#
    );
    serve_bytes(
        &server,
        "/feed/json/",
        json.into_bytes(),
        "application/json",
    )
    .await;
    let mut latin1 = b"<rss version=\"2.0\"><channel><title>Vieux</title><item><title>Caf\xe9 cr\xe8me</title><link>".to_vec();
    latin1.extend_from_slice(format!("{base}/latin/").as_bytes());
    latin1.extend_from_slice(b"</link></item></channel></rss>");
    serve_bytes(&server, "/latin1.xml", latin1, "text/xml").await;
    let utf16: Vec<u8> = format!("<?xml version=\"1.0\" encoding=\"UTF-16\"?><rss version=\"2.0\"><channel><title>W</title><item><title>Stra\u{df}enbahn</title><link>{base}/utf16/</link></item></channel></rss>")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    serve_bytes(&server, "/utf16.xml", utf16, "application/xml").await;
    serve_bytes(
        &server,
        "/noversion.xml",
        format!("<rss><channel><title>Old</title><item><title>No version</title><link>{base}/nv/</link></item></channel></rss>").into_bytes(),
        "application/rss+xml",
    )
    .await;
    serve_bytes(
        &server,
        "/page.html",
        b"<!DOCTYPE html><html><head><title>Home</title></head></html>".to_vec(),
        "text/html",
    )
    .await;
    serve_bytes(
        &server,
        "/api.json",
        b"{\"posts\":[],\"total\":0}".to_vec(),
        "application/json",
    )
    .await;
    let source = |name: &str, at: &str| {
        format!("[[source]]\nname = \"{name}\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}{at}\"\ncomment_feeds = false\n\n")
    };
    let site = site_with(
        &[
            source("json", "/feed/json/"),
            source("latin1", "/latin1.xml"),
            source("utf16", "/utf16.xml"),
            source("noversion", "/noversion.xml"),
            source("page", "/page.html"),
            source("api", "/api.json"),
        ]
        .concat(),
    );
    let (code, out, err) = gather(&site);
    assert_eq!(code, 2, "two sources fail, the others gather: {out}\n{err}");
    for name in ["json", "latin1", "utf16", "noversion"] {
        assert!(
            out.contains(&format!("source `{name}`: 1 new essay, ")),
            "{name}: {out}\n{err}"
        );
    }
    let title = |key: &str| -> String {
        site.db()
            .query_row(
                "SELECT title FROM essay WHERE url LIKE ?1",
                [format!("%{key}%")],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(title("/latin/"), "Café crème");
    assert_eq!(title("/utf16/"), "Straßenbahn");
    assert_eq!(title("/json/"), "From the plugin");
    assert!(
        err.contains("source `page` failed") && err.contains("an HTML page, not a feed"),
        "{err}"
    );
    assert!(
        err.contains("source `api` failed")
            && err.contains("not a JSON Feed")
            && !err.contains("missing field"),
        "{err}"
    );
    assert!(!err.contains("no root element"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn atom_feed_authors_and_json_feed_1_1_authors_are_used() {
    let server = MockServer::start().await;
    let base = server.uri();
    let now = gazette::time::now()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    // Blogger's Atom: the author on the feed, not on each entry.
    let atom = format!(
        r#"<?xml version='1.0' encoding='UTF-8'?><feed xmlns='http://www.w3.org/2005/Atom'><id>tag:blogger.com,1999:blog-1</id><updated>{now}</updated><title type='text'>Island Blog</title><author><name>Ines Kalb</name></author><entry><id>tag:blogger.com,1999:blog-1.post-9</id><published>{now}</published><updated>{now}</updated><title type='text'>Gulls</title><content type='html'>&lt;p&gt;Gulls.&lt;/p&gt;</content><link rel='alternate' type='text/html' href='{base}/2026/11/gulls.html' title='Gulls'/></entry></feed>"#
    );
    serve_bytes(
        &server,
        "/atom.xml",
        atom.into_bytes(),
        "application/atom+xml",
    )
    .await;
    let json = format!(
        r#"{{"version":"https://jsonfeed.org/version/1.1","title":"J","author":{{"name":"Deprecated Field"}},"authors":[{{"name":"Feed Author"}}],"items":[
            {{"id":"a","url":"{base}/a/","title":"Item author","content_html":"<p>a</p>","date_published":"{now}","author":{{"name":"Old Style"}},"authors":[{{"name":"New Style"}}]}},
            {{"id":"b","url":"{base}/b/","title":"Inherits","content_html":"<p>b</p>","date_published":"{now}"}}]}}"#
    );
    serve_bytes(
        &server,
        "/feed.json",
        json.into_bytes(),
        "application/feed+json",
    )
    .await;
    let site = site_with(&format!(
        "[[source]]\nname = \"blogger\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/atom.xml\"\ncomment_feeds = false\n\n\
         [[source]]\nname = \"json\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/feed.json\""
    ));
    let (code, out, err) = gather(&site);
    assert_eq!(code, 0, "{out}\n{err}");
    let author = |title: &str| -> Option<String> {
        site.db()
            .query_row("SELECT author FROM essay WHERE title = ?1", [title], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(author("Gulls").as_deref(), Some("Ines Kalb"));
    assert_eq!(author("Item author").as_deref(), Some("New Style"));
    assert_eq!(author("Inherits").as_deref(), Some("Feed Author"));
}

/// Every `href`/`src` value in some HTML.
fn link_values(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\"", "href='", "src='"] {
        let quote = attr.chars().last().unwrap();
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find(quote).unwrap_or(rest.len());
            out.push(rest[..end].to_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn no_link_in_a_message_has_a_scheme_but_http_https_or_mailto() {
    let server = MockServer::start().await;
    let base = server.uri();
    let recent = format!("<pubDate>{}</pubDate>", rfc822(1));
    let schemes = [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(2)",
        " javascript:alert(3)",
        "vbscript:msgbox(4)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCg1KTwvc2NyaXB0Pg==",
        "file:///etc/passwd",
        "ftp://files.example.org/x",
        "tel:+441234",
    ];
    let mut items = String::new();
    for (i, bad) in schemes.iter().enumerate() {
        items.push_str(&format!(
            r#"	<item>
		<title>Linked {i}</title>
		<link>{bad}</link>
		{recent}
		<guid isPermaLink="false">{base}/?p={i}</guid>
		<content:encoded><![CDATA[<p><a href="{bad}">a</a> <img src="{bad}" alt="i"> <a href="mailto:ed@example.org">mail</a> <a href="https://example.org/ok">ok</a></p>]]></content:encoded>
	</item>
"#
        ));
    }
    serve_bytes(
        &server,
        "/feed/",
        rss(&base, &items).into_bytes(),
        "application/rss+xml",
    )
    .await;
    let site = site_with(&format!(
        "[[source]]\nname = \"blog\"\ntype = \"feed\"\nallow_private = true\nurl = \"{base}/feed/\"\ncomment_feeds = false"
    ));
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mail = &site.outbox()[0];
    assert!(mail.html.contains("Linked 7"), "{}", mail.html);
    let links = link_values(&mail.html);
    for l in &links {
        let lower = l.trim().to_ascii_lowercase();
        assert!(
            lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("mailto:"),
            "{l} in\n{}",
            mail.html
        );
    }
    assert_eq!(
        site.count("SELECT COUNT(*) FROM essay WHERE url IS NOT NULL"),
        0,
        "none of the item links was a web page"
    );
    // The stored bodies keep their web and mail links and nothing else.
    let bodies: Vec<String> = site
        .db()
        .prepare("SELECT content_html FROM essay")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(bodies.len(), schemes.len());
    for body in &bodies {
        let links = link_values(body);
        assert!(
            links.contains(&"https://example.org/ok".to_owned()),
            "{body}"
        );
        assert!(
            links.contains(&"mailto:ed@example.org".to_owned()),
            "{body}"
        );
        assert_eq!(links.len(), 2, "{body}");
    }
}
