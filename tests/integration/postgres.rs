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
    step(
        &["subscribers", "add", "bo@example.org", "--digest", "essays"],
        1,
    );
    step(&["subscribers", "list"], 0);
    step(&["editions"], 0);
    step(
        &[
            "follows",
            "add",
            "ada@example.org",
            "against-the-tidy-garden",
        ],
        0,
    );
    step(&["follows", "list"], 0);
    step(
        &[
            "follows",
            "remove",
            "ada@example.org",
            "against-the-tidy-garden",
        ],
        0,
    );
    step(&["retry", "--digest", "essays"], 0);
    step(&["subscribers", "export"], 0);
    // Mail that comes back: ada's essays copy bounces; the list then says so.
    let ada = site
        .outbox_matching("essays-0001-")
        .into_iter()
        .find(|m| m.to_addr == "ada@example.org")
        .expect("ada's first essays copy");
    let bounce = crate::inbound::fixture(
        "exim-bounce.eml",
        "ada@example.org",
        &format!("<{}>", ada.message_id),
    );
    for _ in 0..2 {
        let r = crate::inbound::pipe_env(site, bounce.as_bytes(), &[], &[(PASSWORD_ENV, PASSWORD)]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        seen.push(format!("$ gazette inbound < bounce\n{}", r.stdout));
    }
    let r = run(site, &["subscribers", "list"]);
    assert!(r.stdout.contains("[5.1.1 "), "{}", r.stdout);
    seen.push(format!(
        "$ gazette subscribers list\n{}",
        regex_mask(&r.stdout)
    ));
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
    for table in [
        "subscriber",
        "essay",
        "reply",
        "edition",
        "delivery",
        "follow",
    ] {
        let q = format!("SELECT COUNT(*) FROM {table}");
        assert_eq!(pg.count("gazette", &q), on_sqlite.count(&q), "{table}");
    }
    assert!(
        pg.count(
            "gazette",
            "SELECT COUNT(*) FROM subscriber WHERE status = 'unsubscribed'"
        ) == 1
    );
    assert_eq!(
        pg.count(
            "gazette",
            "SELECT COUNT(*) FROM delivery WHERE status = 'sent'"
        ),
        on_sqlite.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'")
    );
    assert_eq!(
        pg.count("gazette", "SELECT version FROM gazette_schema"),
        on_sqlite.count("PRAGMA user_version")
    );
    assert!(
        !on_pg.path("gazette.db").exists(),
        "no SQLite file beside a PostgreSQL config"
    );
}

/// Postfix's smtp-sink on a loopback port, dumping each message into a folder.
struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    fn start() -> Sink {
        let dir = tempfile::tempdir().unwrap();
        // smtp-sink drops to `nobody`, who must be able to write the dumps.
        Command::new("chmod")
            .arg("777")
            .arg(dir.path())
            .status()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("Postfix's smtp-sink is not installed (scripts/test installs postfix)");
        let child = Command::new(bin)
            .args(["-u", "nobody", "-d"])
            .arg(format!("{}/%M.", dir.path().display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("1024")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Pg::wait_for("smtp-sink", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Sink { child, port, dir }
    }

    /// Every message received: (HELO name, recipient, Message-ID).
    fn received(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().trim_matches(['<', '>']).to_owned())
                    .unwrap_or_default()
            };
            if text.contains("\n\n") || text.contains("\r\n\r\n") {
                out.push((
                    field("X-Helo-Args:"),
                    field("X-Rcpt-Args:"),
                    field("Message-ID:"),
                ));
            }
        }
        out
    }

    /// One message received for `rcpt`, as the sink dumped it.
    fn message_for(&self, rcpt: &str) -> Vec<u8> {
        let needle = format!("X-Rcpt-Args: <{rcpt}>");
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .find(|b| String::from_utf8_lossy(b).contains(&needle))
            .unwrap_or_else(|| panic!("no message for {rcpt}"))
    }

    fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path()).unwrap().count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An instance in a folder of its own on database `db`, sending to `port` as `helo`,
/// with `readers` managed subscribers imported (by the first instance only).
fn instance(pg: &Pg, db: &str, port: u16, helo: &str, concurrency: usize) -> Site {
    let site = crate::smtp::smtp_site_on_port(
        port,
        &format!("helo = \"{helo}\""),
        &format!("concurrency = {concurrency}\nretry_within_run = \"0s\""),
        0,
    );
    site.edit(
        "config.toml",
        "[state]\npath = \"gazette.db\"",
        pg.state_toml(db).trim_end(),
    );
    site
}

fn import_readers(site: &Site, n: usize) {
    let mut csv = String::from("email,name,timezone,digests\n");
    for i in 0..n {
        csv.push_str(&format!("reader{i:05}@example.org,Reader {i},,essays\n"));
    }
    site.write("readers.csv", &csv);
    let r = run(site, &["subscribers", "import", "readers.csv"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

/// Makes the `essays` edition with every row owed but none sent: the first send runs
/// against a port nobody listens on, so the relay is "down" and every row waits.
fn owed_edition(site: &Site, n: usize) {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let cfg = site.read("config.toml");
    let live = cfg
        .lines()
        .find_map(|l| l.strip_prefix("port = "))
        .unwrap()
        .to_owned();
    site.edit(
        "config.toml",
        &format!("port = {live}"),
        &format!("port = {dead_port}"),
    );
    let r = run(site, &["send", "--digest", "essays"]);
    assert_ne!(
        r.code, 0,
        "a send to a closed port must not succeed: {}",
        r.stdout
    );
    site.edit(
        "config.toml",
        &format!("port = {dead_port}"),
        &format!("port = {live}"),
    );
    let _ = n;
}

/// The relay is back: every waiting row is due now.
fn due_now(pg: &Pg) {
    pg.sql(
        "gazette",
        "UPDATE delivery SET next_attempt_at = NULL WHERE status = 'deferred'",
    );
}

fn spawn(site: &Site, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gazette"))
        .args(args)
        .current_dir(site.dir.path())
        .env(PASSWORD_ENV, PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(mut child: Child, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(status.success(), "{what} failed: {err}");
            return err;
        }
        assert!(Instant::now() < deadline, "{what} did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_instances_deliver_one_edition_each_reader_exactly_once() {
    const READERS: usize = 10_000;
    let pg = Pg::start();
    let sink = Sink::start();
    let a = instance(&pg, "gazette", sink.port, "a.instance.test", 8);
    let b = instance(&pg, "gazette", sink.port, "b.instance.test", 8);
    import_readers(&a, READERS);
    owed_edition(&a, READERS);
    due_now(&pg);
    assert_eq!(sink.count(), 0);
    assert_eq!(
        pg.count(
            "gazette",
            "SELECT COUNT(*) FROM delivery WHERE status IN ('pending', 'deferred')"
        ),
        READERS as i64
    );
    // Both instances deliver the one edition at once.
    let pa = spawn(&a, &["send", "--resume"]);
    let pb = spawn(&b, &["send", "--resume"]);
    finish(pa, "instance a");
    finish(pb, "instance b");
    std::thread::sleep(Duration::from_millis(300));
    let got = sink.received();
    let mut per_reader: HashMap<&str, usize> = HashMap::new();
    let mut per_instance: HashMap<&str, usize> = HashMap::new();
    for (helo, rcpt, _) in &got {
        *per_reader.entry(rcpt).or_default() += 1;
        *per_instance.entry(helo).or_default() += 1;
    }
    assert_eq!(got.len(), READERS, "messages received");
    assert_eq!(per_reader.len(), READERS, "distinct readers");
    assert!(per_reader.values().all(|&n| n == 1), "someone got two");
    let (na, nb) = (
        per_instance["a.instance.test"],
        per_instance["b.instance.test"],
    );
    eprintln!("instance a sent {na}, instance b sent {nb}");
    assert_eq!(na + nb, READERS);
    // Both took part, each a real share (pages are reserved 1,024 rows at a time).
    assert!(na >= 100 && nb >= 100, "a sent {na}, b sent {nb}");
    assert_eq!(
        pg.count(
            "gazette",
            "SELECT COUNT(*) FROM delivery WHERE status = 'sent'"
        ),
        READERS as i64
    );
    assert_eq!(
        pg.count(
            "gazette",
            "SELECT COUNT(*) FROM edition WHERE finished_at IS NOT NULL"
        ),
        1
    );
}

#[test]
fn kill_9_of_one_instance_mid_send_the_other_finishes_and_loses_nothing() {
    const READERS: usize = 1_200;
    const CONCURRENCY: usize = 4;
    let pg = Pg::start();
    let sink = Sink::start();
    let a = instance(&pg, "gazette", sink.port, "a.instance.test", CONCURRENCY);
    let b = instance(&pg, "gazette", sink.port, "b.instance.test", CONCURRENCY);
    import_readers(&a, READERS);
    owed_edition(&a, READERS);
    due_now(&pg);
    let mut pa = spawn(&a, &["send", "--resume"]);
    let pb = spawn(&b, &["send", "--resume"]);
    // Kill a once it has sent a hundred (it holds reserved rows and some in flight).
    Pg::wait_for("instance a to send", Duration::from_secs(300), || {
        sink.received()
            .iter()
            .filter(|m| m.0 == "a.instance.test")
            .count()
            >= 100
    });
    pa.kill().unwrap(); // SIGKILL
    pa.wait().unwrap();
    let err = finish(pb, "instance b");
    std::thread::sleep(Duration::from_millis(300));
    let got = sink.received();
    let mut per_reader: HashMap<&str, Vec<&str>> = HashMap::new();
    for (_, rcpt, id) in &got {
        per_reader.entry(rcpt).or_default().push(id);
    }
    assert_eq!(
        per_reader.len(),
        READERS,
        "every reader got the edition\n{err}"
    );
    let dupes: Vec<_> = per_reader.iter().filter(|(_, ids)| ids.len() > 1).collect();
    let by_a = got.iter().filter(|m| m.0 == "a.instance.test").count();
    eprintln!(
        "a sent {by_a} before the kill, {} messages in all, {} duplicates",
        got.len(),
        dupes.len()
    );
    assert!(
        dupes.len() <= CONCURRENCY,
        "{} duplicates, more than a's {CONCURRENCY} in flight",
        dupes.len()
    );
    for (rcpt, ids) in &dupes {
        assert!(
            ids.iter().all(|i| i == &ids[0]),
            "{rcpt}: a duplicate with another Message-ID: {ids:?}"
        );
    }
    assert_eq!(
        pg.count(
            "gazette",
            "SELECT COUNT(*) FROM delivery WHERE status = 'sent'"
        ),
        READERS as i64
    );
}

/// `gazette run` in `site`, its log in `name.log` there.
fn daemon(site: &Site, name: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("run")
        .current_dir(site.dir.path())
        .env(PASSWORD_ENV, PASSWORD)
        .env_remove("GAZETTE_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(site.path(&format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap()
}

/// Editions as (scheduled_for, created_at), oldest tick first.
fn editions(pg: &Pg) -> Vec<(String, String)> {
    pg.sql(
        "gazette",
        "SELECT scheduled_for || '|' || created_at FROM edition WHERE digest = 'essays' ORDER BY scheduled_for",
    )
    .lines()
    .filter_map(|l| l.split_once('|'))
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect()
}

#[test]
fn kill_9_of_the_scheduling_instance_another_makes_the_next_edition_within_30_s() {
    let pg = Pg::start();
    let sink = Sink::start();
    let sites: Vec<Site> = ["a.instance.test", "b.instance.test"]
        .into_iter()
        .map(|helo| {
            let site = instance(&pg, "gazette", sink.port, helo, 2);
            // An edition every five seconds, even with nothing new.
            site.edit(
                "config.toml",
                "schedule = \"0 8 * * 1\"",
                "schedule = \"*/5 * * * * *\"",
            );
            site.edit(
                "config.toml",
                "skip_if_empty = true",
                "skip_if_empty = false",
            );
            site
        })
        .collect();
    // The web endpoint on both, signing with one secret.
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "a-shared-secret-of-at-least-32-characters").unwrap();
    let ports: Vec<u16> = sites
        .iter()
        .map(|site| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            site.edit(
                "config.toml",
                "[delivery]",
                &format!(
                    "[web]\nlisten = \"127.0.0.1:{port}\"\nsecret_file = \"{}\"\n\n[delivery]",
                    secret.path().display()
                ),
            );
            port
        })
        .collect();
    import_readers(&sites[0], 3);
    let mut a = daemon(&sites[0], "a");
    Pg::wait_for("a to make an edition", Duration::from_secs(60), || {
        !editions(&pg).is_empty()
    });
    let b = daemon(&sites[1], "b");
    Pg::wait_for("b to start as a follower", Duration::from_secs(30), || {
        sites[1]
            .read("b.log")
            .contains("Another instance holds the leader lock")
    });
    Pg::wait_for("a second edition", Duration::from_secs(30), || {
        editions(&pg).len() >= 2
    });
    a.kill().unwrap(); // SIGKILL: no cleanup, the leader lock goes with its session
    a.wait().unwrap();
    let killed = Instant::now();
    let before = editions(&pg).len();
    Pg::wait_for("an edition after the kill", Duration::from_secs(60), || {
        editions(&pg).len() > before
    });
    let failover = killed.elapsed();
    eprintln!("the next edition came {failover:?} after the kill");
    assert!(
        failover < Duration::from_secs(30),
        "failover took {failover:?}"
    );
    assert!(sites[1]
        .read("b.log")
        .contains("Took over gathering and making editions"));
    // Two more ticks under b, then every edition is delivered and b stops.
    let now = editions(&pg).len();
    Pg::wait_for("two more editions", Duration::from_secs(30), || {
        editions(&pg).len() >= now + 2
    });
    Pg::wait_for("every edition delivered", Duration::from_secs(60), || {
        pg.count(
            "gazette",
            "SELECT COUNT(*) FROM delivery WHERE status <> 'sent'",
        ) == 0
            && pg.count(
                "gazette",
                "SELECT COUNT(*) FROM edition WHERE finished_at IS NULL",
            ) == 0
    });
    // The endpoint serves on the surviving instance, and honours a one-click link from
    // a message the dead one signed and sent.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, _) = rt.block_on(crate::endpoint::get(&format!(
        "http://127.0.0.1:{}/healthz",
        ports[1]
    )));
    assert_eq!(status, 200);
    let by_a = crate::common::Mail::parse(&sink.message_for("reader00001@example.org"));
    let link = by_a
        .list_unsubscribe
        .clone()
        .unwrap()
        .split(['<', '>'])
        .find(|p| p.starts_with("https://"))
        .unwrap()
        .to_owned();
    let path = &link[link[8..].find('/').unwrap() + 8..];
    let (status, body) = rt.block_on(crate::endpoint::post(
        &format!("http://127.0.0.1:{}{path}", ports[1]),
        &[("List-Unsubscribe", "One-Click")],
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        pg.count(
            "gazette",
            "SELECT COUNT(*) FROM digest_choice c JOIN subscriber s ON s.id = c.subscriber_id
              WHERE s.email = 'reader00001@example.org' AND c.digest = 'essays' AND c.wanted = 0"
        ),
        1,
        "{body}"
    );
    let mut b = b;
    Command::new("kill")
        .args(["-TERM", &b.id().to_string()])
        .status()
        .unwrap();
    let status = b.wait().unwrap();
    assert!(status.success(), "b: {status}\n{}", sites[1].read("b.log"));

    let made = editions(&pg);
    let mut ticks: Vec<&str> = made.iter().map(|(t, _)| t.as_str()).collect();
    ticks.dedup();
    assert_eq!(
        ticks.len(),
        made.len(),
        "a tick with two editions: {made:?}"
    );
    // Each edition went to each reader once, by whichever instance sent it.
    let got = sink.received();
    let mut per_reader: HashMap<&str, usize> = HashMap::new();
    for (_, rcpt, _) in &got {
        *per_reader.entry(rcpt).or_default() += 1;
    }
    assert_eq!(per_reader.len(), 3);
    for (rcpt, n) in &per_reader {
        assert!(
            *n >= made.len() && *n <= made.len() + 1,
            "{rcpt} got {n} messages for {} editions",
            made.len()
        );
    }
    assert_eq!(
        pg.count("gazette", "SELECT COUNT(*) FROM delivery"),
        3 * made.len() as i64
    );
}

#[test]
fn store_copy_moves_the_sample_to_postgresql_and_back_and_send_resends_nothing() {
    let pg = Pg::start();
    let site = Site::new();
    site.write(
        "readers.csv",
        "email,name,timezone,digests\nr1@example.org,R1,,essays\nr2@example.org,R2,,essays\n",
    );
    assert_eq!(
        run(&site, &["subscribers", "import", "readers.csv"]).code,
        0
    );
    // Suppressions: a managed reader and one config.toml lists, both unsubscribed.
    for who in ["r2@example.org", "bo.chen@example.net"] {
        let r = run(&site, &["subscribers", "remove", who]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let first = run(&site, &["send"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let sent_before = site.outbox().len();
    assert!(sent_before >= 2, "{}", first.stdout);
    let to: Vec<String> = site.outbox().into_iter().map(|m| m.to_addr).collect();
    assert!(!to.contains(&"r2@example.org".to_owned()), "{to:?}");
    let counts = |sql: &str| site.count(sql);
    let ledger = counts("SELECT COUNT(*) FROM delivery");
    assert!(ledger > 0);

    // SQLite → PostgreSQL, checked by counts; a second copy into it is refused.
    let url = pg.url("gazette");
    let to_pg = [
        "store",
        "copy",
        "--to",
        &url,
        "--password-env",
        PASSWORD_ENV,
        "--tls",
        "off",
    ];
    let copy = run(&site, &to_pg);
    assert_eq!(copy.code, 0, "{}\n{}", copy.stdout, copy.stderr);
    eprintln!("{}", copy.stdout);
    assert_eq!(
        pg.count("gazette", "SELECT COUNT(*) FROM delivery"),
        ledger,
        "{}",
        copy.stdout
    );
    let again = run(&site, &to_pg);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);

    site.edit(
        "config.toml",
        "[state]\npath = \"gazette.db\"",
        pg.state_toml("gazette").trim_end(),
    );
    let resend = run(&site, &["send"]);
    assert_eq!(resend.code, 0, "{}", resend.stderr);
    assert_eq!(
        site.outbox().len(),
        sent_before,
        "re-sent: {}",
        resend.stdout
    );
    // The suppressions came along: neither address can be added back from the CLI,
    // and the next edition (a new essay) skips both.
    let readd = run(
        &site,
        &["subscribers", "add", "r2@example.org", "--digest", "essays"],
    );
    assert_eq!(readd.code, 1, "{}", readd.stdout);
    let today = gazette::time::now().format("%Y-%m-%dT%H:%M:%SZ");
    site.write(
        "examples/site/essays/after-the-move.md",
        &format!("+++\ntitle = \"After the Move\"\nauthor = \"Maren Holt\"\ndate = {today}\n+++\n\nWritten after the store moved.\n"),
    );
    let next = run(&site, &["send"]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    let new: Vec<String> = site
        .outbox_matching("essays-0002-")
        .into_iter()
        .map(|m| m.to_addr.to_lowercase())
        .collect();
    assert!(!new.is_empty(), "{}", next.stdout);
    assert!(
        !new.contains(&"r2@example.org".to_owned())
            && !new.contains(&"bo.chen@example.net".to_owned()),
        "{new:?}"
    );
    assert!(new.contains(&"r1@example.org".to_owned()), "{new:?}");

    // And back to a SQLite file: the same editions, and again nothing re-sent.
    let editions_pg = run(&site, &["editions"]).stdout;
    let back = run(&site, &["store", "copy", "--to", "back.db"]);
    assert_eq!(back.code, 0, "{}\n{}", back.stdout, back.stderr);
    site.edit(
        "config.toml",
        pg.state_toml("gazette").trim_end(),
        "[state]\npath = \"back.db\"",
    );
    assert_eq!(run(&site, &["editions"]).stdout, editions_pg);
    let sent = site.outbox().len();
    let r = run(&site, &["send"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(site.outbox().len(), sent, "{}", r.stdout);
}
