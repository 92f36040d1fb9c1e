//! `gazette send` end to end on a temporary copy of the shipped publication: what lands
//! in the outbox, what the ledger says, and what the user is told.

use std::collections::BTreeSet;

use crate::common::{Mail, Site};

fn addressed(mails: &[Mail]) -> BTreeSet<(String, String)> {
    mails
        .iter()
        .map(|m| (m.to_addr.clone(), m.subject.clone()))
        .collect()
}

fn expected_first_send() -> BTreeSet<(String, String)> {
    [
        ("ada@example.org", "The Long Margin: 3 new essays"),
        ("ada@example.org", "The Long Margin: 9 new replies"),
        ("Bo.Chen@example.net", "The Long Margin: 3 new essays"),
        ("carmen@example.com", "The Long Margin: 9 new replies"),
    ]
    .iter()
    .map(|(a, s)| (a.to_string(), s.to_string()))
    .collect()
}

/// A reader's copy: its mailto carries the reader's tag.
fn assert_well_formed(m: &Mail) {
    assert_well_formed_as(m, true)
}

fn assert_well_formed_as(m: &Mail, reader: bool) {
    assert_eq!(
        m.types,
        vec!["multipart/alternative", "text/plain", "text/html"],
        "{}",
        m.raw
    );
    assert_eq!(m.from, "digest@longmargin.example.org");
    assert_eq!(m.to_count, 1);
    assert!(m.has_date, "Date header");
    assert!(
        m.message_id.ends_with("@longmargin.example.org") && m.message_id.len() > 30,
        "Message-ID {:?}",
        m.message_id
    );
    let list_id = m.list_id.as_deref().expect("List-Id");
    assert!(list_id.ends_with(".longmargin.example.org>"), "{list_id}");
    let unsub = m.list_unsubscribe.as_deref().expect("List-Unsubscribe");
    if !reader {
        // A test copy has no reader to name: the plain address.
        assert_eq!(
            unsub,
            "<mailto:digest@longmargin.example.org?subject=unsubscribe%20essays>"
        );
        return;
    }
    // The mailto carries the reader's own signed tag, for `gazette inbound`.
    let tagged = unsub
        .strip_prefix("<mailto:digest+unsubscribe.")
        .and_then(|t| t.split_once('@'))
        .unwrap_or_else(|| panic!("{unsub}"));
    let (id, mac) = tagged.0.split_once('.').unwrap();
    assert!(id.parse::<i64>().is_ok() && mac.len() == 20, "{unsub}");
    assert!(
        tagged
            .1
            .starts_with("longmargin.example.org?subject=unsubscribe%20"),
        "{unsub}"
    );
    let html = m.html.to_lowercase();
    assert!(!html.contains("<style"), "inlined CSS leaves no <style>");
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains("<link"), "no external resources");
    assert!(html.contains("style=\""), "CSS was inlined");
    assert!(m.html.contains("Unsubscribe") && m.text.contains("Unsubscribe:"));
    for tag in ["<p", "<div", "<a ", "<br", "<html", "&lt;", "&amp;"] {
        assert!(
            !m.text.contains(tag),
            "text part is not HTML ({tag}): {}",
            m.text
        );
    }
}

#[test]
fn first_send_writes_one_message_per_subscriber_and_digest() {
    let site = Site::new();
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("Gathered `site`: 4 new essays, 9 new replies."),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Digest `essays` edition #1: 3 essays, 0 replies; sent 2."),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Digest `replies` edition #1: 0 essays, 9 replies; sent 2."),
        "{}",
        run.stdout
    );

    let mails = site.outbox();
    assert_eq!(addressed(&mails), expected_first_send());
    for m in &mails {
        assert_well_formed(m);
        // Nobody else's address appears in a subscriber's copy.
        for other in [
            "ada@example.org",
            "Bo.Chen@example.net",
            "carmen@example.com",
        ] {
            if other != m.to_addr {
                assert!(
                    !m.raw.contains(other),
                    "{other} leaked into {}'s copy",
                    m.to_addr
                );
            }
        }
    }
    let ada_essays = mails
        .iter()
        .find(|m| m.to_addr == "ada@example.org" && m.subject.contains("essays"))
        .unwrap();
    assert_eq!(ada_essays.to_name.as_deref(), Some("Ada Lovelace"));
    for title in [
        "The Ferry Timetable",
        "What the Archive Forgets",
        "Against the Tidy Garden",
    ] {
        assert!(
            ada_essays.html.contains(title) && ada_essays.text.contains(&title.to_uppercase()),
            "{title}"
        );
    }
    // The 2024 essay is archive, older than the 7-day look-back: not in a first edition.
    assert!(!ada_essays.html.contains("Notes on Slowness"));

    let replies = mails
        .iter()
        .find(|m| m.to_addr == "carmen@example.com")
        .unwrap();
    assert_eq!(replies.to_name, None);
    assert!(
        replies.html.contains("Anonymous reader"),
        "a reply without a name"
    );
    assert!(replies.text.contains("On \"The Ferry Timetable\""));
    // Threads: Maren answers Tomas, indented under him in the text part.
    assert!(replies.text.contains("* Tomas Reid:\n"), "{}", replies.text);
    assert!(
        replies.text.contains("\n    * Maren Holt replied:\n"),
        "{}",
        replies.text
    );
    // Messy input was tidied: no doubled spaces, backtick apostrophes fixed.
    assert!(
        replies.text.contains("which is fine until it isn’t."),
        "{}",
        replies.text
    );
    assert!(!replies.text.contains("  As  someone"));

    assert_eq!(site.count("SELECT COUNT(*) FROM edition"), 2);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM edition WHERE finished_at IS NOT NULL"),
        2
    );
    assert_eq!(
        site.count(
            "SELECT COUNT(*) FROM delivery WHERE status = 'sent' AND message_id IS NOT NULL"
        ),
        4
    );
    assert_eq!(site.count("SELECT COUNT(*) FROM delivery"), 4);
    assert_eq!(site.count("SELECT COUNT(*) FROM essay"), 4);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM reply WHERE parent_key IS NOT NULL"),
        4
    );
}

#[test]
fn second_send_sends_nothing_and_says_why() {
    let site = Site::new();
    assert_eq!(site.gazette(&["send"]).code, 0);
    let before = site.emls_in("outbox");
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("Gathered `site`: 0 new essays, 0 new replies."),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Digest `essays`: nothing new since"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Digest `replies`: nothing new since"),
        "{}",
        run.stdout
    );
    assert_eq!(site.emls_in("outbox"), before, "no new or changed files");
    assert_eq!(site.count("SELECT COUNT(*) FROM edition"), 2);
}

#[test]
fn a_new_essay_goes_out_in_the_next_edition_only() {
    let site = Site::new();
    assert_eq!(site.gazette(&["send"]).code, 0);
    site.write(
        "examples/site/essays/late-arrival.md",
        "+++\ntitle = \"A Late Arrival\"\nauthor = \"Noor\"\n+++\n\nIt came after the first edition.\n",
    );
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("edition #2: 1 essay, 0 replies"),
        "{}",
        run.stdout
    );
    let second: Vec<Mail> = site.outbox_matching("essays-0002-");
    assert_eq!(second.len(), 2);
    for m in &second {
        assert_eq!(m.subject, "The Long Margin: 1 new essay");
        assert!(m.html.contains("A Late Arrival"));
        assert!(
            !m.html.contains("The Ferry Timetable"),
            "already sent in #1"
        );
    }
}

#[test]
fn dry_run_changes_neither_the_database_nor_the_outbox() {
    let site = Site::new();
    let run = site.gazette(&["send", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("Digest `essays` edition #1: 3 essays, 0 replies; would send 2."),
        "{}",
        run.stdout
    );
    assert!(run
        .stdout
        .contains("Dry run: nothing was recorded or written."));
    assert!(!site.path("gazette.db").exists(), "no database created");
    assert!(!site.path("outbox").exists(), "no outbox created");

    // After a real send, a dry run leaves the file's bytes and the outbox alone.
    assert_eq!(site.gazette(&["send"]).code, 0);
    site.write(
        "examples/site/essays/another.md",
        "+++\ntitle = \"Another\"\n+++\nText.\n",
    );
    let db_before = std::fs::read(site.path("gazette.db")).unwrap();
    let outbox_before = site.emls_in("outbox");
    let run = site.gazette(&["send", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("edition #2: 1 essay, 0 replies; would send 2."),
        "{}",
        run.stdout
    );
    assert_eq!(std::fs::read(site.path("gazette.db")).unwrap(), db_before);
    assert_eq!(site.emls_in("outbox"), outbox_before);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM essay"),
        4,
        "the new essay was not stored"
    );
}

#[test]
fn preview_writes_parts_and_records_nothing_and_message_ids_repeat() {
    let site = Site::new();
    let run = site.gazette(&["send", "--preview", "preview"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!site.path("gazette.db").exists());
    assert!(!site.path("outbox").exists());
    let previews = site.emls_in("preview");
    assert_eq!(previews.len(), 4);
    for (name, _) in &previews {
        let stem = name.trim_end_matches(".eml");
        assert!(site.path(&format!("preview/{stem}.html")).is_file());
        assert!(site.path(&format!("preview/{stem}.txt")).is_file());
    }
    // Rendering the same edition again — for real this time — gives the same Message-IDs.
    assert_eq!(site.gazette(&["send"]).code, 0);
    let ids = |files: &[(String, Vec<u8>)]| -> BTreeSet<String> {
        files
            .iter()
            .map(|(_, b)| Mail::parse(b).message_id)
            .collect()
    };
    assert_eq!(ids(&previews), ids(&site.emls_in("outbox")));
    // Preview files are named for their reader.
    let names: BTreeSet<String> = previews.iter().map(|(n, _)| n.clone()).collect();
    assert!(
        names.contains("essays-0001-ada@example.org.eml"),
        "{names:?}"
    );
    for (name, bytes) in &previews {
        let to = Mail::parse(bytes).to_addr;
        assert!(
            name.ends_with(&format!("-{to}.eml")),
            "{name} is not {to}'s"
        );
    }
}

#[test]
fn preview_of_one_subscriber_writes_only_their_copies() {
    let site = Site::new();
    let run = site.gazette(&[
        "send",
        "--preview",
        "one",
        "--subscriber",
        "ADA@example.org",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let names: Vec<String> = site.emls_in("one").into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "essays-0001-ada@example.org.eml",
            "replies-0001-ada@example.org.eml"
        ]
    );
    assert!(site.path("one/essays-0001-ada@example.org.html").is_file());
    assert!(
        !site.path("gazette.db").exists(),
        "a preview records nothing"
    );
    // --subscriber means nothing without --preview: a usage error.
    let run = site.gazette(&["send", "--subscriber", "ada@example.org"]);
    assert_eq!(run.code, 64, "{run:?}");
    assert!(!site.path("outbox").exists());
}

#[test]
fn to_sends_one_test_copy_without_recording_an_edition() {
    let site = Site::new();
    let run = site.gazette(&["send", "--to", "editor@example.org", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("Digest `essays` test copy: 3 essays, 0 replies; sent test copy 1."),
        "{}",
        run.stdout
    );
    let mails = site.outbox();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to_addr, "editor@example.org");
    assert_well_formed_as(&mails[0], false);
    assert!(!site.path("gazette.db").exists(), "nothing recorded");
    assert!(
        !site.path("gazette.secret").exists(),
        "no secret made for it"
    );
    // The real first edition is still to come.
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert!(
        run.stdout.contains("edition #1: 3 essays"),
        "{}",
        run.stdout
    );

    let bad = site.gazette(&["send", "--to", "not-an-address"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr
            .contains("--to \"not-an-address\" is not a valid e-mail address"),
        "{}",
        bad.stderr
    );
}

#[test]
fn subjects_and_names_with_line_breaks_stay_on_one_line() {
    let site = Site::new();
    site.write(
        "examples/site/essays/injection.md",
        "+++\ntitle = \"Line one\\r\\nBcc: victim@example.com\\u0000 and \\u202e reversed\"\n+++\nBody.\n",
    );
    site.edit(
        "config.toml",
        "subject = \"{{ site.name }}: {{ essays | length }}",
        "subject = \"{{ essays.0.title }} | {{ site.name }}: {{ essays | length }}",
    );
    site.edit(
        "config.toml",
        "name = \"Bo Chen\"",
        "name = \"Bo\\r\\nBcc: victim@example.com\"",
    );
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for m in site.outbox() {
        assert_eq!(m.to_count, 1);
        assert!(
            m.subject.starts_with("Line one Bcc: victim@example.com"),
            "{:?}",
            m.subject
        );
        assert!(!m.subject.contains('\n') && !m.subject.contains('\r'));
        let headers = m.raw.split("\r\n\r\n").next().unwrap().to_owned();
        assert!(
            !headers
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "no Bcc header:\n{headers}"
        );
    }
}

#[test]
fn hostile_replies_never_reach_the_message() {
    let site = Site::new();
    site.write(
        "examples/site/essays/the-ferry-timetable.replies.toml",
        r#"
[[reply]]
id = "x1"
author = "<script>alert('name')</script>Mallory"
body = """
Nice. <script>alert('body')</script> <img src="x" onerror="alert('img')"> [click](javascript:alert('link'))
"""
"#,
    );
    let run = site.gazette(&["send", "--digest", "replies"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mails = site.outbox();
    assert_eq!(mails.len(), 2);
    for m in &mails {
        let raw = m.html.to_lowercase();
        assert!(!raw.contains("<script"), "{}", m.html);
        assert!(!raw.contains("onerror"), "{}", m.html);
        assert!(!raw.contains("javascript:"), "{}", m.html);
        assert!(!m.text.contains("alert('body')"), "{}", m.text);
        // The name is shown as text, escaped in HTML.
        assert!(m.html.contains("&lt;script&gt;alert("), "{}", m.html);
    }
}

#[test]
fn a_template_error_sends_nothing_and_loses_nothing() {
    let site = Site::new();
    site.edit(
        "templates/default/digest.txt",
        "{% for essay in essays %}",
        "{% for essay in essays %}{{ essay.no_such_field.deeper }}",
    );
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("template default/digest.txt failed for digest `essays`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing was sent for this edition"),
        "{}",
        run.stderr
    );
    assert!(site.emls_in("outbox").is_empty(), "not one message");
    assert_eq!(site.count("SELECT COUNT(*) FROM edition"), 0);
    assert_eq!(site.count("SELECT COUNT(*) FROM delivery"), 0);

    // Fixed, the next send delivers everything that was waiting.
    site.edit(
        "templates/default/digest.txt",
        "{{ essay.no_such_field.deeper }}",
        "",
    );
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(addressed(&site.outbox()), expected_first_send());
}

#[test]
fn a_broken_source_does_not_block_the_others_and_its_items_come_later() {
    let site = Site::new();
    site.write(
        "extra/essays/good-later.md",
        "+++\ntitle = \"From the Second Source\"\n+++\nHello.\n",
    );
    site.write(
        "extra/essays/broken.md",
        "+++\ntitle = \"Broken\"\nauthr = \"typo\"\n+++\nBody.\n",
    );
    let cfg = site.read("config.toml").replace(
        "[[digest]]\nname = \"essays\"",
        "[[source]]\nname = \"extra\"\ntype = \"folder\"\npath = \"extra/essays\"\n\n[[digest]]\nname = \"essays\"",
    );
    site.write("config.toml", &cfg);

    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(
        run.code, 2,
        "partial: a source failed\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains("source `extra` failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("broken.md: line 3"), "{}", run.stderr);
    assert!(run.stderr.contains("authr"), "{}", run.stderr);
    assert!(
        run.stdout.contains("edition #1: 3 essays"),
        "the good source went out: {}",
        run.stdout
    );
    let err: Option<String> = site
        .db()
        .query_row(
            "SELECT last_error FROM source_state WHERE source = 'extra'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(err.unwrap().contains("authr"));

    site.edit("extra/essays/broken.md", "authr", "author");
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("edition #2: 2 essays"),
        "{}",
        run.stdout
    );
    let second: Vec<Mail> = site.outbox_matching("essays-0002-");
    assert_eq!(second.len(), 2);
    assert!(second[0].html.contains("From the Second Source") && second[0].html.contains("Broken"));
}

#[test]
fn an_unsubscribed_address_is_not_mailed_even_if_config_lists_it() {
    let site = Site::new();
    assert_eq!(site.gazette(&["send"]).code, 0);
    site.db()
        .execute(
            "UPDATE subscriber SET status = 'unsubscribed' WHERE email = 'ada@example.org'",
            [],
        )
        .unwrap();
    site.write(
        "examples/site/essays/more.md",
        "+++\ntitle = \"More\"\n+++\nText.\n",
    );
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("edition #2: 1 essay, 0 replies; sent 1."),
        "{}",
        run.stdout
    );
    let second: Vec<Mail> = site.outbox_matching("essays-0002-");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].to_addr, "Bo.Chen@example.net");
    assert_eq!(
        site.count("SELECT COUNT(*) FROM subscriber WHERE email = 'ada@example.org' AND status = 'unsubscribed'"),
        1,
        "syncing the config did not resubscribe her"
    );
}

#[test]
fn an_unfinished_edition_is_resumed_without_resending() {
    let site = Site::new();
    assert_eq!(site.gazette(&["send", "--digest", "essays"]).code, 0);
    // Simulate a crash after the first message: one row back to pending, its file gone.
    let db = site.db();
    let (id, stem): (i64, String) = db
        .query_row(
            "SELECT d.id, s.email FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id ORDER BY s.email LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    db.execute(
        "UPDATE delivery SET status = 'sending', sent_at = NULL WHERE id = ?1",
        [id],
    )
    .unwrap();
    db.execute("UPDATE edition SET finished_at = NULL", [])
        .unwrap();
    drop(db);
    let before = site.outbox();
    let lost = before.iter().find(|m| m.to_addr == stem).unwrap().clone();
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("edition #1 (resumed): 3 essays, 0 replies; sent 1."),
        "{}",
        run.stdout
    );
    let after = site.outbox();
    assert_eq!(
        after.len(),
        2,
        "one file per subscriber, the other not re-sent"
    );
    let resent = after.iter().find(|m| m.to_addr == stem).unwrap();
    assert_eq!(
        resent.message_id, lost.message_id,
        "same Message-ID on resume"
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'"),
        2
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE attempts = 2"),
        1
    );
}

#[test]
fn gather_and_editions_report_what_happened() {
    let site = Site::new();
    let run = site.gazette(&["editions"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("No editions yet"), "{}", run.stdout);
    let run = site.gazette(&["gather"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "source `site`: 4 new essays, 9 new replies"
    );
    assert!(site.emls_in("outbox").is_empty(), "gather sends nothing");
    assert_eq!(site.gazette(&["send"]).code, 0);
    let run = site.gazette(&["editions"]);
    assert_eq!(run.code, 0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(run.stdout.contains("essays #1"), "{}", run.stdout);
    assert!(
        run.stdout.contains("3 essays, 0 replies  2 sent"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("replies #1"), "{}", run.stdout);
    // --limit counts from the newest; 0 shows them all.
    let one = site.gazette(&["editions", "--limit", "1"]);
    assert_eq!(one.stdout.lines().count(), 1, "{}", one.stdout);
    let all = site.gazette(&["editions", "--limit", "0"]);
    assert_eq!(all.code, 0);
    assert_eq!(all.stdout, run.stdout);
    // The same for scripts.
    let json = site.gazette(&["editions", "--json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let list: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let essays = list.iter().find(|e| e["digest"] == "essays").unwrap();
    assert_eq!(essays["number"], 1);
    assert_eq!(essays["essays"], 3);
    assert_eq!(essays["deliveries"]["sent"], 2);
    assert!(essays["finished_at"].is_string());
}

#[test]
fn unknown_digest_is_an_error_that_lists_the_known_ones() {
    let site = Site::new();
    let run = site.gazette(&["send", "--digest", "weekly"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no digest named `weekly`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("essays, replies"), "{}", run.stderr);
}

#[test]
fn status_shows_schedules_editions_sources_and_owed_deliveries() {
    let site = Site::new();
    let run = site.gazette(&["status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("essays  \"0 8 * * 1\" in Europe/London"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("last: no edition yet") && run.stdout.contains("site  never gathered"),
        "{}",
        run.stdout
    );
    assert!(
        !site.path("gazette.db").exists(),
        "status creates no database"
    );

    assert_eq!(site.gazette(&["send"]).code, 0);
    site.write("examples/site/essays/broken.md", "no front matter");
    assert_eq!(site.gazette(&["gather"]).code, 2);
    let run = site.gazette(&["status"]);
    assert!(run.stdout.contains("last: #1 "), "{}", run.stdout);
    assert!(run.stdout.contains("2 sent"), "{}", run.stdout);
    assert!(
        run.stdout.contains("FAILED: ") && run.stdout.contains("broken.md"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Deliveries owed: 0 pending, 0 deferred"),
        "{}",
        run.stdout
    );

    let json: serde_json::Value =
        serde_json::from_str(&site.gazette(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["digests"][0]["name"], "essays");
    assert_eq!(json["digests"][0]["last_edition"]["deliveries"]["sent"], 2);
    assert_eq!(json["digests"][0]["next"].as_array().unwrap().len(), 3);
    assert!(
        json["digests"][0]["next_local"][0]
            .as_str()
            .unwrap()
            .ends_with(" 08:00 GMT")
            || json["digests"][0]["next_local"][0]
                .as_str()
                .unwrap()
                .ends_with(" 08:00 BST")
    );
    assert_eq!(json["sources"][0]["result"], "failed");
}

#[test]
fn gazette_init_then_send_works_with_no_edits_and_init_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let gazette = |cwd: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gazette"))
            .args(args)
            .current_dir(cwd)
            .env_remove("GAZETTE_LOG")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = gazette(dir.path(), &["init", "demo"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cd demo && gazette send"), "{out}");
    let demo = dir.path().join("demo");
    let config = std::fs::read_to_string(demo.join("config.toml")).unwrap();
    assert!(config.contains("# "), "the starter config is commented");
    // `cd demo && gazette send`, untouched.
    let (code, out, err) = gazette(&demo, &["send"]);
    assert_eq!(code, 0, "{out}{err}");
    let emls = std::fs::read_dir(demo.join("outbox")).unwrap().count();
    assert_eq!(emls, 4, "{out}");
    assert_eq!(gazette(&demo, &["check"]).0, 0);
    // A second init into the same folder writes nothing and says why.
    std::fs::write(demo.join("config.toml"), "# mine\n").unwrap();
    let (code, _, err) = gazette(dir.path(), &["init", "demo"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("already holds") && err.contains("config.toml"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(demo.join("config.toml")).unwrap(),
        "# mine\n"
    );
}
