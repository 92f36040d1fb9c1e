//! `gazette run`: a simulated week in-process (tokio's paused time drives the one clock),
//! catch-up after downtime, and the real binary under signals, beside a second daemon and
//! beside a one-off `send`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::common::{Mail, Site};
use crate::smtp::smtp_site;
use crate::smtp_support::CaptureServer;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A site whose digests and subscribers are replaced by `digests_and_subscribers`.
fn site_with(daemon: &str, digests_and_subscribers: &str) -> Site {
    let site = Site::new();
    let cfg = site.read("config.toml");
    let cut = cfg.find("[[digest]]").unwrap();
    site.write(
        "config.toml",
        &format!(
            "{}\n[daemon]\n{daemon}\n\n{digests_and_subscribers}",
            &cfg[..cut]
        ),
    );
    site
}

/// Runs the daemon in this thread's simulated time from `from` until `until`, then stops it.
async fn run_simulated(site: &Site, from: DateTime<Utc>, until: DateTime<Utc>) {
    gazette::time::simulate_from(from);
    let config = gazette::config::load(&site.path("config.toml")).unwrap();
    let (handle, controls) = gazette::daemon::controls();
    let stopper = async {
        gazette::time::sleep_until(until).await;
        handle.stop.send(true).unwrap();
    };
    let (result, ()) = tokio::join!(gazette::daemon::run(config, controls), stopper);
    result.unwrap();
}

/// Every edition as "digest audience scheduled_for", in time order.
fn editions(site: &Site) -> Vec<String> {
    let db = site.db();
    let mut stmt = db
        .prepare("SELECT digest, audience, scheduled_for FROM edition ORDER BY scheduled_for, digest, audience")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(format!(
            "{} {} {}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

const WEEK_CONFIG: &str = r#"
[[digest]]
name = "morning"
schedule = "0 8 * * *"
timezone = "Europe/Berlin"
include = "essays"
skip_if_empty = false

[[digest]]
name = "local"
schedule = "0 8 * * *"
timezone = "Europe/Berlin"
local_time = true
include = "essays"
skip_if_empty = false

[[digest]]
name = "weekly"
schedule = "0 9 * * 1"
timezone = "America/New_York"
include = "essays"
skip_if_empty = false

[[subscriber]]
email = "asha@example.org"
timezone = "Asia/Kolkata"
digests = ["morning", "local"]

[[subscriber]]
email = "theo@example.org"
timezone = "America/Toronto"
digests = ["local", "weekly"]

[[subscriber]]
email = "bea@example.org"
digests = ["local"]
"#;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_simulated_week_across_the_berlin_dst_change_fires_every_digest_exactly_on_time() {
    let site = site_with("gather_every = \"6h\"", WEEK_CONFIG);
    // Thursday noon to the next Thursday 11:00 UTC; Berlin leaves summer time on Sunday
    // 25 October (08:00 is 06:00 UTC before, 07:00 UTC after); Toronto and New York
    // change a week later, Kolkata never.
    run_simulated(
        &site,
        utc("2026-10-22T12:00:00Z"),
        utc("2026-10-29T11:00:00Z"),
    )
    .await;

    let mut expected = Vec::new();
    for day in 23..=29 {
        let berlin = if day < 25 { "06" } else { "07" };
        expected.push(format!("local Asia/Kolkata 2026-10-{day}T02:30:00.000000Z"));
        expected.push(format!(
            "local Europe/Berlin 2026-10-{day}T{berlin}:00:00.000000Z"
        ));
        expected.push(format!("morning  2026-10-{day}T{berlin}:00:00.000000Z"));
        if day <= 28 {
            expected.push(format!(
                "local America/Toronto 2026-10-{day}T12:00:00.000000Z"
            ));
        }
        if day == 26 {
            expected.push("weekly  2026-10-26T13:00:00.000000Z".to_owned());
        }
    }
    expected.sort_by(|a, b| {
        let key = |s: &str| {
            let mut p = s.split(' ');
            let (d, a, t) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
            (t.to_owned(), d.to_owned(), a.to_owned())
        };
        key(a).cmp(&key(b))
    });
    assert_eq!(editions(&site), expected);

    // Each local-time edition went to its own zone's readers only, and everything went out.
    let per_zone = site.count(
        "SELECT COUNT(*) FROM delivery d JOIN edition e ON e.id = d.edition_id JOIN subscriber s ON s.id = d.subscriber_id
         WHERE e.digest = 'local' AND e.audience <> COALESCE(s.timezone, 'Europe/Berlin')",
    );
    assert_eq!(per_zone, 0, "a reader got another zone's edition");
    let deliveries = site.count("SELECT COUNT(*) FROM delivery");
    assert_eq!(deliveries, 7 + 7 + 6 + 7 + 1);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'"),
        deliveries
    );
    assert_eq!(site.outbox().len() as i64, deliveries);

    // Essays first seen at the first gather went into the first edition of each audience
    // only: every reader's copy covers what is new since their previous copy.
    let with_essays: Vec<String> = {
        let db = site.db();
        let mut stmt = db
            .prepare(
                "SELECT e.digest || ' ' || e.audience FROM edition e
                 WHERE EXISTS (SELECT 1 FROM edition_item i WHERE i.edition_id = e.id)
                 ORDER BY 1",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        with_essays,
        vec![
            "local America/Toronto",
            "local Asia/Kolkata",
            "local Europe/Berlin",
            "morning ",
            "weekly "
        ]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn after_three_days_down_once_sends_one_late_edition_and_skip_sends_none() {
    let site = site_with(
        "gather_every = \"6h\"",
        r#"
[[digest]]
name = "once"
schedule = "0 8 * * *"
timezone = "Europe/Berlin"
skip_if_empty = false

[[digest]]
name = "skip"
schedule = "0 8 * * *"
timezone = "Europe/Berlin"
skip_if_empty = false
catch_up = "skip"

[[digest]]
name = "within"
schedule = "0 8 * * *"
timezone = "Europe/Berlin"
skip_if_empty = false
catch_up = "within:2h"

[[subscriber]]
email = "ada@example.org"
digests = ["once", "skip", "within"]
"#,
    );
    run_simulated(
        &site,
        utc("2026-10-22T12:00:00Z"),
        utc("2026-10-23T12:00:00Z"),
    )
    .await;
    // Down from Friday noon to Monday 12:00 UTC (three 08:00 ticks missed, the latest
    // five hours ago), then up for a day.
    run_simulated(
        &site,
        utc("2026-10-26T12:00:00Z"),
        utc("2026-10-27T12:00:00Z"),
    )
    .await;
    assert_eq!(
        editions(&site),
        vec![
            "once  2026-10-23T06:00:00.000000Z",
            "skip  2026-10-23T06:00:00.000000Z",
            "within  2026-10-23T06:00:00.000000Z",
            // One late edition for the whole gap, made for the latest missed tick.
            "once  2026-10-26T07:00:00.000000Z",
            "once  2026-10-27T07:00:00.000000Z",
            "skip  2026-10-27T07:00:00.000000Z",
            "within  2026-10-27T07:00:00.000000Z",
        ]
    );
}

/// The real binary as a daemon, its stderr captured to a file.
pub(crate) struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    pub(crate) fn start(site: &Site, name: &str) -> Daemon {
        Daemon::start_with(site, name, &[])
    }

    fn start_with(site: &Site, name: &str, global: &[&str]) -> Daemon {
        let log = site.path(&format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_gazette"))
            .args(global)
            .arg("run")
            .current_dir(site.dir.path())
            .env_remove("GAZETTE_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Waits until `cond` holds; it is given the log so far.
    pub(crate) fn wait_for(&mut self, what: &str, mut cond: impl FnMut(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond(&self.log()) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "exited ({status}) while waiting for {what}; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit code (within 30 s).
    pub(crate) fn stop(mut self) -> (i32, String) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), self.log());
            }
            assert!(Instant::now() < deadline, "did not stop:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_applies_a_valid_config_and_keeps_the_old_one_when_the_new_is_broken() {
    let site = Site::new();
    // Every second, even with nothing new, so each tick leaves a message to look at.
    site.edit(
        "config.toml",
        "schedule = \"0 8 * * 1\"",
        "schedule = \"* * * * * *\"",
    );
    site.edit(
        "config.toml",
        "skip_if_empty = true",
        "skip_if_empty = false",
    );
    let mut daemon = Daemon::start(&site, "daemon");
    let subjects = |s: &Site| -> Vec<String> {
        s.outbox_matching("essays")
            .into_iter()
            .map(|m| m.subject)
            .collect()
    };
    daemon.wait_for("a first edition", |_| !subjects(&site).is_empty());
    assert!(subjects(&site)
        .iter()
        .all(|s| s.starts_with("The Long Margin: ")));

    site.edit(
        "config.toml",
        "subject = \"{{ site.name }}: {{ essays | length }}",
        "subject = \"Reloaded: {{ essays | length }}",
    );
    daemon.signal("HUP");
    daemon.wait_for("an edition with the new subject", |_| {
        subjects(&site).iter().any(|s| s.starts_with("Reloaded: "))
    });

    site.edit("config.toml", "# concurrency = 4 ", "concurency = 4 ");
    daemon.signal("HUP");
    daemon.wait_for("the reload to be refused", |log| {
        log.contains("Reload refused")
    });
    let editions_before = site.count("SELECT COUNT(*) FROM edition");
    daemon.wait_for("editions to go on", |_| {
        site.count("SELECT COUNT(*) FROM edition") > editions_before + 1
    });
    let (code, log) = daemon.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains(
            "config.toml:21:1: unknown key `delivery.concurency` (did you mean `concurrency`?)"
        ),
        "the broken line is named: {log}"
    );
    assert!(log.contains("`delivery.concurency`"), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status NOT IN ('sent')"),
        0,
        "a stop leaves nothing half-done when nothing was in flight"
    );
}

#[test]
fn a_second_daemon_on_the_same_database_refuses_to_start() {
    let site = Site::new();
    let mut first = Daemon::start_with(&site, "first", &["--log-format", "json"]);
    first.wait_for("the first daemon to start", |log| {
        log.contains("Gazette is running")
    });
    // For services: every log line is one JSON object with the event's fields.
    let started: serde_json::Value = first
        .log()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON log line"))
        .find(|v| v["message"] == "Gazette is running.")
        .unwrap();
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["digests"], 2);
    let second = site.gazette(&["run"]);
    assert_eq!(second.code, 1, "{second:?}");
    assert!(
        second.stderr.contains(&format!(
            "another `gazette run` (pid {}) is already running",
            first.child.id()
        )),
        "{}",
        second.stderr
    );
    let (code, _) = first.stop();
    assert_eq!(code, 0);
    // With the first one gone, the lock is free again.
    let mut third = Daemon::start(&site, "third");
    third.wait_for("the third daemon to start", |log| {
        log.contains("Gazette is running")
    });
    assert_eq!(third.stop().0, 0);
}

#[test]
fn sigterm_mid_edition_then_restart_beside_a_one_off_send_delivers_each_copy_once() {
    const N: usize = 200;
    let server = CaptureServer::start();
    // Paced, so the edition takes a few seconds and there is a middle to stop in.
    let site = smtp_site(&server, "", "concurrency = 4\nrate = \"40/s\"", N);
    site.edit(
        "config.toml",
        "schedule = \"0 8 * * 1\"",
        "schedule = \"* * * * * *\"",
    );

    let mut daemon = Daemon::start(&site, "daemon");
    let pid = daemon.child.id();
    daemon.wait_for("the first messages", |_| server.count() >= 40);
    let (code, log) = daemon.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("Stopped"), "{log}");
    // It claimed nothing more and let its messages in flight finish: none of its rows
    // is left in flight, the ledger matches the server, and the rest waits.
    let sent_at_stop = server.count() as i64;
    assert_eq!(
        site.count(&format!(
            "SELECT COUNT(*) FROM delivery WHERE status = 'sending' AND claimed_by LIKE '{pid}:%'"
        )),
        0
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'"),
        sent_at_stop
    );
    assert!(sent_at_stop < N as i64, "stopped mid-edition");
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'pending'"),
        N as i64 - sent_at_stop
    );

    // Restarted, with a one-off `send` running beside it on the same edition: claims
    // keep them apart.
    let mut again = Daemon::start(&site, "again");
    again.wait_for("the restart to resume", |_| {
        server.count() as i64 >= sent_at_stop + 10
    });
    let one_off = Command::new(env!("CARGO_BIN_EXE_gazette"))
        .args(["send"])
        .current_dir(site.dir.path())
        .output()
        .unwrap();
    assert!(
        one_off.status.success(),
        "{:?}\n{}\n{}",
        one_off.status,
        String::from_utf8_lossy(&one_off.stdout),
        String::from_utf8_lossy(&one_off.stderr)
    );
    again.wait_for("every subscriber", |_| server.count() >= N);
    std::thread::sleep(Duration::from_millis(500));
    let (code, log) = again.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("resumed=true"), "{log}");

    let got = server.messages();
    let mut per_rcpt: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for c in &got {
        *per_rcpt.entry(c.rcpt_tos.join(",")).or_default() += 1;
        assert!(
            ids.insert(Mail::parse(&c.raw).message_id),
            "a Message-ID twice"
        );
    }
    assert_eq!(per_rcpt.len(), N, "everyone got it");
    assert!(
        per_rcpt.values().all(|n| *n == 1),
        "nobody twice: {per_rcpt:?}"
    );
    assert_eq!(site.count("SELECT COUNT(*) FROM edition"), 1);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'"),
        N as i64
    );
}

#[test]
fn status_lists_each_reader_zone_of_a_local_time_digest_with_its_next_morning() {
    let site = site_with("", WEEK_CONFIG);
    let sent = site.gazette(&["send", "--digest", "local"]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    // A one-off send of a local-time digest makes each zone's next edition now.
    assert_eq!(
        site.count("SELECT COUNT(DISTINCT audience) FROM edition WHERE digest = 'local'"),
        3
    );
    let st: serde_json::Value =
        serde_json::from_str(&site.gazette(&["status", "--json"]).stdout).unwrap();
    let local = st["digests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "local")
        .unwrap();
    let zones: Vec<&str> = local["audiences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert!(a["next_local"].as_str().unwrap().contains(" 08:00 "), "{a}");
            a["timezone"].as_str().unwrap()
        })
        .collect();
    assert_eq!(zones, ["America/Toronto", "Asia/Kolkata", "Europe/Berlin"]);
    let text = site.gazette(&["status"]).stdout;
    assert!(
        text.contains("next for readers in Asia/Kolkata: "),
        "{text}"
    );
}

#[test]
fn deferred_rows_are_retried_when_they_come_due_not_a_minute_later() {
    const N: usize = 100;
    // A greylisting relay: every recipient's first try gets 451, the second is taken.
    let server = CaptureServer::start_args(&[
        "--reject-rcpt",
        "451 4.7.1 Greylisted, please try again later",
        "--reject-first",
    ]);
    let site = smtp_site(&server, "", "concurrency = 8", N);
    site.edit(
        "config.toml",
        "retry_base = \"100ms\"",
        "retry_base = \"1s\"",
    );
    site.edit(
        "config.toml",
        "schedule = \"0 8 * * 1\"",
        "schedule = \"* * * * * *\"",
    );
    let started = Instant::now();
    let mut daemon = Daemon::start(&site, "daemon");
    daemon.wait_for("every retry", |_| server.count() >= N);
    let took = started.elapsed();
    let (code, log) = daemon.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent' AND attempts = 2"),
        N as i64,
        "each deferred once, then sent"
    );
    assert!(took < Duration::from_secs(60), "{took:?}\n{log}");
    // Each retry reached the relay within 2 s of coming due: its due time is when the
    // daemon logged the deferral plus the delay it logged; its arrival is when the relay
    // wrote it. (They waited for the daemon's one-minute nap before.)
    let mut due: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("Deferred.")) {
        let at: DateTime<Utc> = line.split_whitespace().next().unwrap().parse().unwrap();
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap()
                .to_owned()
        };
        let wait: i64 = field("retry_in_ms=").parse().unwrap();
        due.insert(field("to="), at + chrono::Duration::milliseconds(wait));
    }
    assert_eq!(due.len(), N, "{log}");
    for m in server.messages() {
        let arrived: DateTime<Utc> = std::fs::metadata(&m.path)
            .unwrap()
            .modified()
            .unwrap()
            .into();
        let late = arrived - due[&m.rcpt_tos[0]];
        assert!(
            late < chrono::Duration::seconds(2),
            "{} retried {late} after it was due",
            m.rcpt_tos[0]
        );
    }
}

#[test]
fn sigterm_with_a_short_grace_does_not_wait_for_a_slow_relay() {
    // The relay takes 12 s to answer each final dot.
    let server = CaptureServer::start_args(&["--delay", "12"]);
    let site = smtp_site(&server, "", "concurrency = 2", 6);
    site.edit(
        "config.toml",
        "[delivery]",
        "[daemon]\nshutdown_grace = \"1s\"\n\n[delivery]",
    );
    site.edit("config.toml", "timeout = \"5s\"", "timeout = \"60s\"");
    site.edit(
        "config.toml",
        "schedule = \"0 8 * * 1\"",
        "schedule = \"* * * * * *\"",
    );
    let mut daemon = Daemon::start(&site, "daemon");
    daemon.wait_for("messages in flight", |_| {
        // Opening a database the daemon has not made yet would leave an empty file,
        // which it rightly refuses.
        let made = std::fs::metadata(site.path("gazette.db")).is_ok_and(|m| m.len() > 0);
        made && site
            .db()
            .query_row(
                "SELECT COUNT(*) FROM delivery WHERE status = 'sending'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0)
            >= 2
    });
    let asked = Instant::now();
    let (code, log) = daemon.stop();
    let took = asked.elapsed();
    assert_eq!(code, 0, "{log}");
    // The stop took about the 1 s grace, not the relay's 12 s.
    assert!(took < Duration::from_secs(4), "{took:?}\n{log}");
    assert!(log.contains("Grace period over"), "{log}");
    // Nothing lost: every row is sent, owed, or in flight (retried by the next run).
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status IN ('pending', 'sending', 'deferred', 'sent')"),
        6
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'failed'"),
        0
    );
}

#[test]
fn with_the_web_endpoint_a_second_daemon_is_told_the_database_is_in_use() {
    let site = Site::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    site.edit(
        "config.toml",
        "[delivery]",
        &format!("[web]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"http://127.0.0.1:{port}\"\n\n[delivery]"),
    );
    let mut first = Daemon::start(&site, "first");
    first.wait_for("the first daemon to listen", |log| {
        log.contains("Gazette is running")
    });
    let second = site.gazette(&["run"]);
    assert_eq!(second.code, 1, "{second:?}");
    // The lock is taken before the port is bound: the real reason, not the port.
    assert!(
        second.stderr.contains("is already running on"),
        "{}",
        second.stderr
    );
    assert!(
        !second.stderr.contains("cannot listen"),
        "{}",
        second.stderr
    );
    assert_eq!(first.stop().0, 0);
}
