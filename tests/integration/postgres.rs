//! The PostgreSQL store, against a real PostgreSQL (tests/integration/pg_support.rs):
//! the same scenario through the binary on SQLite and on PostgreSQL, several instances
//! on one ledger (claims, kill -9, leader failover), and `store copy` both ways.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Run, Site};
use crate::pg_support::{Pg, PASSWORD, PASSWORD_ENV};

/// Points a copy of the shipped site at database `db` of `pg`.
fn pg_site(pg: &Pg, db: &str) -> Site {
    let site = Site::new();
    site.edit(
        "config.toml",
        "[state]\npath = \"gazette.db\"",
        pg.state_toml(db).trim_end(),
    );
    site
}

fn run(site: &Site, args: &[&str]) -> Run {
    site.gazette_env(args, &[(PASSWORD_ENV, PASSWORD)])
}

/// What a user sees of a store through the CLI, with the parts that differ between
/// two runs (times, ids, paths) masked: the transcript both backends must agree on.
fn scenario(site: &Site) -> Vec<String> {
    let mut seen = Vec::new();
    let mut step = |args: &[&str], want: i32| {
        let r = run(site, args);
        assert_eq!(r.code, want, "gazette {args:?}\n{}\n{}", r.stdout, r.stderr);
        // Timings differ run to run: "Sent 6 messages in 0.03 s (176 messages/s)."
        let untimed: Vec<&str> = r
            .stdout
            .lines()
            .map(|l| match l.find(" messages in ") {
                Some(i) if l.starts_with("Sent ") => &l[..i],
                _ => l,
            })
            .collect();
        let masked = regex_mask(&untimed.join("\n"));
        seen.push(format!("$ gazette {}\n{masked}", args.join(" ")));
    };
    site.write(
        "people.csv",
        "email,name,timezone,digests\nada@example.org,Ada,Europe/Paris,essays\nBo@Example.org,Bo,,essays;replies\n",
    );
    step(&["subscribers", "import", "people.csv"], 0);
    step(&["subscribers", "import", "people.csv"], 0);
    step(&["send"], 0);
    step(&["send"], 0);
    step(&["subscribers", "remove", "bo@example.org"], 0);
    step(&["subscribers", "add", "bo@example.org", "--digest", "essays"], 1);
    step(&["subscribers", "list"], 0);
    step(&["editions"], 0);
    step(&["follows", "add", "ada@example.org", "against-the-tidy-garden"], 0);
    step(&["follows", "list"], 0);
    step(&["follows", "remove", "ada@example.org", "against-the-tidy-garden"], 0);
    step(&["retry", "--digest", "essays"], 0);
    step(&["subscribers", "export"], 0);
    seen
}

/// Masks timestamps and dates so two runs compare equal.
fn regex_mask(text: &str) -> String {
    let b = text.as_bytes();
    let date_at = |i: usize| {
        b.len() >= i + 10
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && b[i + 4] == b'-'
            && b[i + 7] == b'-'
    };
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if date_at(i) {
            out.push_str("<time>");
            i += 10;
            while i < b.len() && (b[i].is_ascii_digit() || b"T:.Z+- ".contains(&b[i])) {
                // A space ends the time unless a clock follows it.
                if b[i] == b' ' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    break;
                }
                i += 1;
            }
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[test]
fn the_same_scenario_gives_the_same_results_on_sqlite_and_postgresql() {
    let pg = Pg::start();
    let on_pg = pg_site(&pg, "gazette");
    let on_sqlite = Site::new();
    let a = scenario(&on_sqlite);
    let b = scenario(&on_pg);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "SQLite and PostgreSQL differ");
    }
    // The same mail, too: what the outbox holds, byte for byte but for dates and ids.
    let mails = |s: &Site| -> Vec<String> {
        let mut v: Vec<String> = s
            .outbox()
            .iter()
            .map(|m| format!("{} {} {}", m.to_addr, m.subject, m.text.len()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(mails(&on_sqlite), mails(&on_pg));
    assert!(!mails(&on_pg).is_empty());
    // The data is really in PostgreSQL, and its schema version is SQLite's.
    for table in ["subscriber", "essay", "reply", "edition", "delivery", "follow"] {
        let q = format!("SELECT COUNT(*) FROM {table}");
        assert_eq!(pg.count("gazette", &q), on_sqlite.count(&q), "{table}");
    }
    assert!(pg.count("gazette", "SELECT COUNT(*) FROM subscriber WHERE status = 'unsubscribed'") == 1);
    assert_eq!(
        pg.count("gazette", "SELECT COUNT(*) FROM delivery WHERE status = 'sent'"),
        on_sqlite.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'")
    );
    assert_eq!(
        pg.count("gazette", "SELECT version FROM gazette_schema"),
        on_sqlite.count("PRAGMA user_version")
    );
    assert!(!on_pg.path("gazette.db").exists(), "no SQLite file beside a PostgreSQL config");
}
