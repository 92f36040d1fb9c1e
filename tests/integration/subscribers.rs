//! `gazette subscribers`: the managed list beside config.toml, CSV import with bad rows,
//! and suppression that wins over the file.

use std::collections::BTreeSet;

use crate::common::Site;

fn recipients(site: &Site) -> BTreeSet<String> {
    site.outbox().into_iter().map(|m| m.to_addr).collect()
}

#[test]
fn a_csv_import_reports_bad_rows_by_line_imports_the_rest_and_is_idempotent() {
    let site = Site::new();
    site.write(
        "readers.csv",
        "email,name,timezone,digests\n\
         dana@Example.ORG,Dana Scully,America/Toronto,essays\n\
         not an address,Nobody,,\n\
         eli@bücher.example,\"Eli, <script>alert(1)</script>\",,essays;replies\n\
         fay@example.org,Fay,Moon/Base,\n\
         gus@example.org,Gus,,weekly\n\
         DANA@example.org,,,replies\n",
    );
    let run = site.gazette(&["subscribers", "import", "readers.csv"]);
    assert_eq!(run.code, 2, "bad rows make a partial import: {run:?}");
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 3, "{}", run.stderr);
    assert!(
        errors[0]
            .starts_with("error: readers.csv:3: \"not an address\" is not a valid e-mail address"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("error: readers.csv:5: \"Moon/Base\" is not an IANA time zone"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("error: readers.csv:6: no digest named \"weekly\""),
        "{}",
        errors[2]
    );
    assert!(
        run.stdout.contains(
            "2 added, 0 updated, 0 unchanged, 0 left out (unsubscribed or bounced), 3 bad rows"
        ),
        "{}",
        run.stdout
    );

    let again = site.gazette(&["subscribers", "import", "readers.csv"]);
    assert!(
        again.stdout.contains("0 added, 0 updated, 2 unchanged"),
        "{}",
        again.stdout
    );

    let list: serde_json::Value =
        serde_json::from_str(&site.gazette(&["subscribers", "list", "--json"]).stdout).unwrap();
    let dana = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["email"] == "dana@example.org")
        .unwrap();
    // The two rows for one address were merged; the domain is lower-cased.
    assert_eq!(dana["digests"], serde_json::json!(["essays", "replies"]));
    assert_eq!(dana["timezone"], "America/Toronto");
    assert_eq!(dana["origin"], "cli");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["email"] == "eli@xn--bcher-kva.example"),
        "IDN domain stored as punycode: {list}"
    );

    // Imported readers get the next edition like anyone else, names escaped in HTML.
    let sent = site.gazette(&["send"]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let to = recipients(&site);
    assert!(
        to.contains("dana@example.org") && to.contains("eli@xn--bcher-kva.example"),
        "{to:?}"
    );
    for m in site.outbox() {
        assert!(
            !m.html.contains("<script>"),
            "a name reached the HTML unescaped"
        );
    }

    // The export reads back as the same list.
    let export = site.gazette(&["subscribers", "export"]);
    assert_eq!(export.code, 0);
    assert!(export
        .stdout
        .starts_with("email,name,timezone,digests,status,origin\n"));
    site.write("export.csv", &export.stdout);
    let re = site.gazette(&["subscribers", "import", "export.csv"]);
    assert_eq!(re.code, 0, "{re:?}");
    assert!(
        re.stdout.contains("0 added, 0 updated, 5 unchanged"),
        "{}",
        re.stdout
    );
}

#[test]
fn an_unsubscribed_address_is_never_mailed_even_while_config_toml_lists_it() {
    let site = Site::new();
    let removed = site.gazette(&["subscribers", "remove", "Ada@EXAMPLE.org"]);
    assert_eq!(removed.code, 0, "{removed:?}");
    assert!(
        removed.stdout.contains("Unsubscribed Ada@example.org"),
        "{}",
        removed.stdout
    );

    let check = site.gazette(&["check"]);
    assert_eq!(check.code, 0);
    assert!(
        check
            .stderr
            .contains("lists ada@example.org, which is unsubscribed"),
        "{}",
        check.stderr
    );

    let sent = site.gazette(&["send"]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let to = recipients(&site);
    assert!(!to.contains("ada@example.org"), "{to:?}");
    assert!(
        to.contains("Bo.Chen@example.net"),
        "the others still get theirs: {to:?}"
    );

    // The operator cannot re-subscribe them: only their own confirmation can.
    let add = site.gazette(&["subscribers", "add", "ada@example.org"]);
    assert_eq!(add.code, 1);
    assert!(add.stderr.contains("is unsubscribed"), "{}", add.stderr);
}

#[test]
fn an_address_taken_out_of_config_toml_gets_no_more_digests() {
    let site = Site::new();
    assert_eq!(site.gazette(&["send"]).code, 0);
    site.edit(
        "config.toml",
        "[[subscriber]]\nemail = \"carmen@example.com\"\ndigests = [\"replies\"]",
        "",
    );
    // New replies arrive; Carmen is no longer listed.
    let file = "examples/site/essays/the-ferry-timetable.replies.toml";
    site.write(
        file,
        &format!(
            "{}\n[[reply]]\nid = \"late\"\nauthor = \"Late Reader\"\nbody = \"A late reply.\"\n",
            site.read(file)
        ),
    );
    let sent = site.gazette(&["send"]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    assert!(
        sent.stdout.contains("Digest `replies` edition #2"),
        "{}",
        sent.stdout
    );
    let replies_to: Vec<String> = site
        .outbox_matching("replies-0002")
        .into_iter()
        .map(|m| m.to_addr)
        .collect();
    assert_eq!(replies_to, vec!["ada@example.org".to_owned()]);
}

#[test]
fn an_exported_name_that_looks_like_a_formula_is_neutralised() {
    let site = Site::new();
    let run = site.gazette(&[
        "subscribers",
        "add",
        "mallory@example.org",
        "--name",
        "=HYPERLINK(\"http://evil.example/\",\"click\")",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let run = site.gazette(&["subscribers", "export"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut reader = csv::Reader::from_reader(run.stdout.as_bytes());
    let names: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
    assert!(
        names.contains(&"'=HYPERLINK(\"http://evil.example/\",\"click\")".to_owned()),
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| !n.starts_with(['=', '+', '-', '@'])),
        "{names:?}"
    );
}

#[test]
fn unsendable_addresses_are_refused_and_one_already_stored_fails_alone() {
    let site = Site::new();
    site.write(
        "readers.csv",
        "email,name,timezone,digests\n\
         \"\"\"a@b\"\"@example.org\",Quoted,,essays\n\
         user@[127.0.0.1],Literal,,essays\n\
         \"a\u{2028}b@example.org\",Separator,,essays\n\
         fine@example.org,Fine,,essays\n",
    );
    let run = site.gazette(&["subscribers", "import", "readers.csv"]);
    assert_eq!(run.code, 2, "{run:?}");
    for (line, why) in [
        (2, "a quoted local part"),
        (3, "an IP-literal domain"),
        (4, "line-separator character U+2028"),
    ] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with(&format!("error: readers.csv:{line}:")) && l.contains(why)),
            "{line}: {}",
            run.stderr
        );
    }
    assert!(run.stdout.contains("1 added"), "{}", run.stdout);

    // In config.toml, the same address is a config error with its line.
    let cfg = site.read("config.toml");
    site.write(
        "config.toml",
        &format!("{cfg}\n[[subscriber]]\nemail = \"user@[127.0.0.1]\"\n"),
    );
    let check = site.gazette(&["check"]);
    assert_eq!(check.code, 1);
    assert!(
        check.stderr.contains("an IP-literal domain"),
        "{}",
        check.stderr
    );
    site.write("config.toml", &cfg);

    // One that an older version let in fails alone; everyone else gets the edition.
    let db = site.db();
    assert_eq!(site.gazette(&["gather"]).code, 0);
    db.execute(
        "INSERT INTO subscriber (email, name, origin, status, changed_at) VALUES ('\"a@b\"@example.org', 'Old', 'cli', 'active', '2026-01-01T00:00:00.000000Z')",
        [],
    )
    .unwrap();
    db.execute(
        "INSERT INTO subscriber_digest (subscriber_id, digest) SELECT id, 'essays' FROM subscriber WHERE name = 'Old'",
        [],
    )
    .unwrap();
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("delivery to \"a@b\"@example.org failed"),
        "{}",
        run.stderr
    );
    let essays = site.outbox_matching("essays-0001-");
    assert!(
        essays.iter().any(|m| m.to_addr == "fine@example.org"),
        "{}",
        run.stdout
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'failed'"),
        1
    );
}

#[test]
fn an_import_whose_header_is_wrong_is_rejected_whole() {
    let site = Site::new();
    site.write(
        "readers.csv",
        "mail,name\ndana@example.org,Dana\neli@example.org,Eli\n",
    );
    let run = site.gazette(&["subscribers", "import", "readers.csv"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("error: readers.csv:1: no `email` column"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("error: readers.csv was rejected: nothing was imported."),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("bad row"), "{}", run.stdout);
    let list = site.gazette(&["subscribers", "list"]);
    assert!(!list.stdout.contains("dana@example.org"), "{}", list.stdout);
}

#[test]
fn adding_an_address_again_says_what_it_is_subscribed_to() {
    let site = Site::new();
    let args = [
        "subscribers",
        "add",
        "dana@example.org",
        "--digest",
        "essays",
    ];
    assert_eq!(site.gazette(&args).code, 0);
    let again = site.gazette(&args);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again.stdout.trim(),
        "dana@example.org is already subscribed to essays with that name and zone; nothing changed."
    );
}
