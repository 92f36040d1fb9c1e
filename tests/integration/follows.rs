//! Issue 15, as readers use it against the running endpoint: following an essay from a
//! copy, a `replies = "followed"` digest carrying only followed threads, stopping from
//! the copy, and `gazette follows`.

use std::time::Duration;

use crate::common::{Mail, Site};
use crate::endpoint::{get, post, site_with_web, Server};

/// The shipped publication with its replies digest on `followed`, Bo on both digests,
/// and Carmen on a second replies digest that carries everything.
fn followed_site(extra_digest: &str) -> Site {
    let site = site_with_web("");
    site.edit(
        "config.toml",
        "include = \"replies\"\n",
        &format!("include = \"replies\"\nreplies = \"followed\"\n{extra_digest}"),
    );
    site.edit(
        "config.toml",
        "name = \"Bo Chen\"\ndigests = [\"essays\"]",
        "name = \"Bo Chen\"\ndigests = [\"essays\", \"replies\"]",
    );
    site.edit(
        "config.toml",
        "email = \"carmen@example.com\"\ndigests = [\"replies\"]",
        "email = \"carmen@example.com\"\ndigests = [\"everything\"]",
    );
    site.edit(
        "config.toml",
        "[[subscriber]]\nemail = \"ada@example.org\"",
        "[[digest]]\nname = \"everything\"\ntitle = \"Every reply\"\nschedule = \"@daily\"\n\
         subject = \"Every reply: {{ reply_count }}\"\ninclude = \"replies\"\n\n\
         [[subscriber]]\nemail = \"ada@example.org\"",
    );
    site
}

/// Appends a reply to an essay of the sample folder.
fn add_reply(site: &Site, slug: &str, id: &str, author: &str) {
    let rel = format!("examples/site/essays/{slug}.replies.toml");
    let mut text = if site.path(&rel).exists() {
        site.read(&rel)
    } else {
        String::new()
    };
    text.push_str(&format!(
        "\n[[reply]]\nid = \"{id}\"\nauthor = \"{author}\"\nbody = \"\"\"\nA new reply from {author}.\n\"\"\"\n"
    ));
    site.write(&rel, &text);
}

/// The URL on the line after `label` that follows `after` in `text`.
fn link_after(text: &str, after: &str, label: &str) -> String {
    let start = text
        .find(after)
        .unwrap_or_else(|| panic!("{after} in {text}"));
    let rest = &text[start..];
    let at = rest
        .find(label)
        .unwrap_or_else(|| panic!("{label} after {after} in {text}"));
    rest[at + label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_owned()
}

fn follows(site: &Site) -> i64 {
    site.count("SELECT COUNT(*) FROM follow")
}

fn copies(site: &Site, prefix: &str) -> Vec<Mail> {
    site.outbox_matching(prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_follow_from_their_copy_and_get_only_the_threads_they_follow() {
    let site = followed_site("");
    let server = Server::start(&site);
    assert_eq!(site.gazette_async(&["send"]).await.code, 0);
    // Nobody follows anything yet: no copy of the followed digest at all.
    assert!(copies(&site, "replies-").is_empty());
    let ada = copies(&site, "essays-0001-")
        .into_iter()
        .find(|m| m.to_addr == "ada@example.org")
        .expect("Ada's essays copy");
    assert!(
        ada.html.contains("Follow the conversation") && ada.html.contains(" replies"),
        "reply counts and follow links beside each essay:\n{}",
        ada.html
    );
    let follow = link_after(
        &ada.text,
        "THE FERRY TIMETABLE",
        "Follow the conversation: ",
    );
    assert!(follow.starts_with("https://"), "{follow}");

    // The GET shows a button and changes nothing; the POST follows.
    let (status, page) = get(&server.url(&follow)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Follow the conversation on “The Ferry Timetable”?")
            && page.contains("<form method=\"post\">"),
        "{page}"
    );
    assert_eq!(follows(&site), 0, "a GET follows nothing");
    let (status, page) = post(&server.url(&follow), &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("You follow “The Ferry Timetable”"), "{page}");
    assert_eq!(follows(&site), 1);
    let (_, again) = post(&server.url(&follow), &[]).await;
    assert!(
        again.contains("You follow"),
        "following twice is following once"
    );
    assert_eq!(follows(&site), 1);

    // New replies under A (the ferry) and B (the garden).
    tokio::time::sleep(Duration::from_millis(20)).await;
    add_reply(&site, "the-ferry-timetable", "90", "Ines Alder");
    add_reply(&site, "against-the-tidy-garden", "91", "Olu Bassey");
    assert_eq!(site.gazette_async(&["send"]).await.code, 0);
    let replies = copies(&site, "replies-0001-");
    let to: Vec<&str> = replies.iter().map(|m| m.to_addr.as_str()).collect();
    assert_eq!(
        to,
        ["ada@example.org"],
        "Bo follows nothing, so gets no copy"
    );
    let ada_replies = &replies[0];
    assert!(
        ada_replies.text.contains("The Ferry Timetable") && ada_replies.text.contains("Ines Alder")
    );
    assert!(
        !ada_replies.text.contains("Against the Tidy Garden")
            && !ada_replies.text.contains("Olu Bassey"),
        "only the followed thread:\n{}",
        ada_replies.text
    );
    let carmen = copies(&site, "everything-")
        .into_iter()
        .filter(|m| m.to_addr == "carmen@example.com")
        .max_by_key(|m| m.message_id.clone())
        .expect("Carmen's copy");
    let carmen_all: String = copies(&site, "everything-")
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert!(
        carmen_all.contains("Ines Alder") && carmen_all.contains("Olu Bassey"),
        "{}",
        carmen.text
    );
    assert!(
        !carmen.text.contains("Stop following"),
        "an `all` digest has nothing to stop"
    );

    // "Stop following" from her copy: GET asks, POST stops; the next edition skips her.
    let stop = link_after(&ada_replies.text, "The Ferry Timetable", "Stop following: ");
    let (status, page) = get(&server.url(&stop)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Stop following “The Ferry Timetable”?"),
        "{page}"
    );
    assert_eq!(follows(&site), 1);
    let (_, page) = post(&server.url(&stop), &[]).await;
    assert!(page.contains("You no longer follow"), "{page}");
    assert_eq!(follows(&site), 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    add_reply(&site, "the-ferry-timetable", "92", "Ines Alder");
    assert_eq!(site.gazette_async(&["send"]).await.code, 0);
    assert!(
        copies(&site, "replies-0002-").is_empty(),
        "nobody follows: no copy"
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM edition WHERE digest = 'replies'"),
        1
    );
}

#[test]
fn the_follows_command_adds_lists_and_removes() {
    let site = followed_site("");
    assert_eq!(site.gazette(&["gather"]).code, 0);
    let url = site
        .db()
        .query_row(
            "SELECT url FROM essay WHERE title = 'The Ferry Timetable'",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap();
    let add = site.gazette(&["follows", "add", "Ada@Example.org", &url]);
    assert_eq!(add.code, 0, "{add:?}");
    assert!(
        add.stdout
            .contains("ada@example.org now follows “The Ferry Timetable”"),
        "{}",
        add.stdout
    );
    let status = site.gazette(&["status"]);
    assert!(
        status
            .stdout
            .contains("Follows: 1 essay followed by 1 reader."),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("replies: followed only"),
        "{}",
        status.stdout
    );
    let list = site.gazette(&["follows", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{}", list.stdout);
    assert_eq!(rows[0]["email"], "ada@example.org");
    assert_eq!(rows[0]["url"], url.as_str());
    let missing = site.gazette(&[
        "follows",
        "add",
        "ada@example.org",
        "https://nowhere.example/x/",
    ]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("no stored essay has the URL or key"),
        "{}",
        missing.stderr
    );
    let stranger = site.gazette(&["follows", "add", "who@example.org", &url]);
    assert_eq!(stranger.code, 1);
    assert!(
        stranger.stderr.contains("is not a subscriber"),
        "{}",
        stranger.stderr
    );
    let remove = site.gazette(&["follows", "remove", "ada@example.org", &url]);
    assert!(
        remove.stdout.contains("no longer follows"),
        "{}",
        remove.stdout
    );
    assert_eq!(site.count("SELECT COUNT(*) FROM follow"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_follow_follows_what_a_reader_is_sent_and_the_preferences_page_lists_it() {
    let site = followed_site("");
    // auto_follow is a digest's default for readers who made no choice: set on the
    // essays digest, the one that sends essays.
    site.edit(
        "config.toml",
        "max_essays = 10\n",
        "max_essays = 10\nauto_follow = true\n",
    );
    let server = Server::start(&site);
    assert_eq!(site.gazette_async(&["send"]).await.code, 0);
    let sent = site.count("SELECT COUNT(*) FROM edition_item i JOIN edition e ON e.id = i.edition_id WHERE e.digest = 'essays' AND i.kind = 'essay'");
    assert!(sent > 0);
    // Ada and Bo receive the essays digest: each follows every essay sent.
    assert_eq!(follows(&site), 2 * sent);
    let ada = copies(&site, "essays-0001-")
        .into_iter()
        .find(|m| m.to_addr == "ada@example.org")
        .unwrap();
    let prefs = crate::endpoint::link_in(&ada.text, "https://");
    let prefs = ada
        .text
        .split_whitespace()
        .find(|w| w.contains("/preferences/"))
        .map_or(prefs, str::to_owned);
    let (status, page) = get(&server.url(&prefs)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Conversations you follow") && page.contains("The Ferry Timetable"),
        "{page}"
    );
    assert!(
        page.contains("name=\"auto_follow\" value=\"on\" checked"),
        "{page}"
    );
}

/// Runs Python (html5lib's strict HTML5 parser, feedparser) on `input`.
fn python_check(script: &str, input: &str) -> String {
    let python =
        std::env::var("GAZETTE_TEST_PYTHON").expect("GAZETTE_TEST_PYTHON (scripts/test sets it)");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input");
    std::fs::write(&file, input).unwrap();
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        input
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const STRICT_HTML: &str = "import sys, html5lib\nhtml5lib.HTMLParser(strict=True).parse(open(sys.argv[1], 'rb').read())\nprint('ok')";
const ATOM: &str = "import sys, feedparser\nd = feedparser.parse(open(sys.argv[1], 'rb').read())\nassert not d.bozo, d.bozo_exception\nassert d.version == 'atom10', d.version\nprint(len(d.entries), '|'.join(e.link for e in d.entries))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_archive_lists_every_edition_parses_and_holds_nothing_personal() {
    let site = site_with_web("");
    site.edit(
        "config.toml",
        "max_essays = 10\n",
        "max_essays = 10\narchive = true\n",
    );
    let server = Server::start(&site);
    assert_eq!(site.gazette_async(&["send"]).await.code, 0);
    let first = copies(&site, "essays-0001-");
    assert!(!first.is_empty());
    let base = "https://longmargin.example.org";
    for m in &first {
        assert!(
            m.raw
                .contains(&format!("List-Archive: <{base}/archive/essays/>")),
            "{}",
            m.raw
        );
        assert!(
            m.text
                .contains(&format!("View in your browser: {base}/archive/essays/1")),
            "{}",
            m.text
        );
    }
    // A second edition.
    site.write(
        "examples/site/essays/a-late-essay.md",
        "+++\ntitle = \"A Late Essay\"\nauthor = \"A. Writer\"\n+++\n\nIt came late.\n",
    );
    assert_eq!(site.gazette_async(&["send"]).await.code, 0);
    assert!(!copies(&site, "essays-0002-").is_empty());

    let (status, index) = get(&format!("{}/archive/essays/", server.base)).await;
    assert_eq!(status, 200, "{index}");
    assert!(
        index.contains("No. 2") && index.contains("No. 1"),
        "{index}"
    );
    python_check(STRICT_HTML, &index);
    let (status, page) = get(&format!("{}/archive/essays/1", server.base)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("The Ferry Timetable"), "{page}");
    python_check(STRICT_HTML, &page);
    let (status, feed) = get(&format!("{}/archive/essays/feed.atom", server.base)).await;
    assert_eq!(status, 200);
    assert_eq!(
        python_check(ATOM, &feed),
        format!("2 {base}/archive/essays/2|{base}/archive/essays/1")
    );
    // Nothing about any reader, in any of them.
    let personal = [
        "ada@example.org",
        "Ada Lovelace",
        "Bo.Chen",
        "bo.chen",
        "Bo Chen",
        "carmen@",
        "/unsubscribe/",
        "/preferences/",
        "/follow/",
        "You receive",
    ];
    for text in [&index, &page, &feed] {
        for p in personal {
            assert!(!text.contains(p), "{p} in an archive page:\n{text}");
        }
    }
    assert_eq!(
        get(&format!("{}/archive/essays/9", server.base)).await.0,
        404
    );
    assert_eq!(
        get(&format!("{}/archive/replies/", server.base)).await.0,
        404,
        "not archived"
    );
}

#[test]
fn an_archive_without_the_web_endpoint_and_an_unknown_replies_choice_are_config_errors() {
    let site = Site::new();
    site.edit(
        "config.toml",
        "max_essays = 10\n",
        "max_essays = 10\narchive = true\n",
    );
    site.edit(
        "config.toml",
        "include = \"replies\"\n",
        "include = \"replies\"\nreplies = \"some\"\n",
    );
    let run = site.gazette(&["check"]);
    assert_eq!(run.code, 1, "{run:?}");
    let line = |key: &str| {
        let n = site
            .read("config.toml")
            .lines()
            .position(|l| l.starts_with(key))
            .unwrap()
            + 1;
        format!("config.toml:{n}:")
    };
    assert!(
        run.stderr.contains(&format!(
            "{}11: `digest[0].archive`: a public archive needs the web endpoint",
            line("archive =")
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&line("replies =")) && run.stderr.contains("\"some\" is not a choice"),
        "{}",
        run.stderr
    );
}
