//! Delivery through real outages (issue 13): a full outbox disk (a small tmpfs the test
//! mounts), a relay that is down (a closed port) and comes back (aiosmtpd started on the
//! same port), a relay that refuses everyone alike (aiosmtpd answering every RCPT with
//! 554 5.7.1), recipient-specific refusals requeued with `gazette retry`, Ctrl-C during a
//! send to a slow relay, and a database that is an empty file.

use std::process::Command;
use std::time::Duration;

use crate::common::free_port;
use crate::common::Site;
use crate::smtp::smtp_site_on_port;
use crate::smtp_support::CaptureServer;

fn rows(site: &Site, sql: &str) -> Vec<(String, i64)> {
    let db = site.db();
    let mut stmt = db.prepare(sql).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A tmpfs of `kib` KiB mounted at `dir` (the tests run as root, as CI does); unmounted
/// when dropped.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(dir: &std::path::Path, kib: u32) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a small tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            dir: dir.to_owned(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A copy of the shipped publication with `n` subscribers, delivering into its outbox.
fn outbox_site(n: usize) -> Site {
    let site = Site::new();
    let mut cfg = site.read("config.toml");
    for i in 0..n {
        cfg.push_str(&format!(
            "\n[[subscriber]]\nemail = \"reader{i:03}@example.org\"\nname = \"Reader {i:03}\"\n"
        ));
    }
    site.write("config.toml", &cfg);
    site
}

#[test]
fn a_full_outbox_disk_exits_3_leaves_nothing_cut_and_delivers_once_space_is_back() {
    let site = outbox_site(60);
    let disk = SmallDisk::mount(&site.path("outbox"), 96);
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("disk is full"), "{}", run.stderr);
    assert!(
        run.stderr.contains("paused") && run.stderr.contains("Nothing was marked failed"),
        "{}",
        run.stderr
    );
    let written = site.emls_in("outbox");
    assert!(!written.is_empty(), "some messages fit on the disk");
    let total = site.count("SELECT COUNT(*) FROM delivery") as usize;
    assert!(written.len() < total, "{} of {total}", written.len());
    for (name, bytes) in &written {
        let mail = crate::common::Mail::parse(bytes);
        assert!(
            mail.text.contains("Unsubscribe"),
            "{name} is cut: {} bytes",
            bytes.len()
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(site.path("outbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let owed = site.count("SELECT COUNT(*) FROM delivery WHERE status IN ('pending', 'deferred')");
    assert_eq!(
        owed as usize + written.len(),
        total,
        "every message is sent or owed"
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'failed'"),
        0
    );
    assert_eq!(
        site.count("SELECT COALESCE(SUM(attempts), 0) FROM delivery WHERE status <> 'sent'"),
        0
    );

    // Space is back: the next send delivers what is owed, each message once.
    drop(disk);
    let run = site.gazette(&["send", "--resume"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let all = site.emls_in("outbox");
    assert_eq!(
        all.len(),
        total - written.len(),
        "the first files were on the tmpfs"
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'"),
        total as i64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_that_is_down_fails_nothing_and_gets_the_edition_once_when_back() {
    let port = free_port();
    let site = smtp_site_on_port(port, "", "retry_within_run = \"1s\"", 5);
    // Nothing listens: connection refused for everyone.
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("paused"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Nothing was marked failed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'failed'"),
        0
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status IN ('deferred', 'pending')"),
        5
    );
    assert_eq!(
        site.count("SELECT MAX(attempts) FROM delivery"),
        0,
        "an outage spends no attempt"
    );

    // The relay comes back where it was.
    let server = CaptureServer::start_args(&["--port", &port.to_string()]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mut got: Vec<String> = server
        .messages()
        .into_iter()
        .flat_map(|m| m.rcpt_tos)
        .collect();
    got.sort();
    let want: Vec<String> = (0..5).map(|i| format!("sub{i:02}@example.org")).collect();
    assert_eq!(got, want, "everyone once");
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'"),
        5
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_wide_554_fails_no_recipient_and_says_why() {
    let server = CaptureServer::start_args(&["--reject-rcpt", "554 5.7.1 Relay access denied"]);
    let site = smtp_site_on_port(server.port, "", "retry_within_run = \"0s\"", 6);
    // Readers at several providers, as a real list has: one domain's policy is not the
    // relay's.
    site.edit("config.toml", "sub01@example.org", "sub01@mail.example.net");
    site.edit("config.toml", "sub02@example.org", "sub02@example.com");
    site.edit("config.toml", "sub04@example.org", "sub04@example.net");
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("the relay refuses every message alike")
            && run.stderr.contains("5.7.1"),
        "{}",
        run.stderr
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'failed'"),
        0
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status IN ('deferred', 'pending')"),
        6
    );
    assert_eq!(server.count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn recipient_refusals_fail_alone_and_gazette_retry_requeues_them() {
    let server = CaptureServer::start_args(&[
        "--reject-rcpt",
        "550 5.7.1 Message refused by policy",
        "--reject-only",
        "sub03",
    ]);
    let site = smtp_site_on_port(server.port, "", "concurrency = 1", 5);
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("delivery to sub03@example.org failed"),
        "{}",
        run.stderr
    );
    assert_eq!(server.count(), 4);
    assert_eq!(
        rows(&site, "SELECT s.email, d.attempts FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id WHERE d.status = 'failed'"),
        vec![("sub03@example.org".to_owned(), 1)]
    );
    let old_port = server.port;
    drop(server);

    // Fixed at the relay; requeue only that kind of failure, then send.
    let server = CaptureServer::start_args(&[]);
    site.edit(
        "config.toml",
        &format!("port = {old_port}"),
        &format!("port = {}", server.port),
    );
    let run = site.gazette(&["retry", "--digest", "essays", "--reason", "5.7.1"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("Digest `essays` edition #1: 1 failed deliveries requeued."),
        "{}",
        run.stdout
    );
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let got: Vec<String> = server
        .messages()
        .into_iter()
        .flat_map(|m| m.rcpt_tos)
        .collect();
    assert_eq!(got, vec!["sub03@example.org".to_owned()]);

    // An address that has since unsubscribed is not requeued.
    site.db()
        .execute("UPDATE delivery SET status = 'failed' WHERE id = 1", [])
        .unwrap();
    site.gazette(&["subscribers", "remove", "sub00@example.org"]);
    let run = site.gazette(&["retry", "--digest", "essays", "--edition", "1"]);
    assert!(
        run.stdout
            .contains("0 failed deliveries requeued, 1 refused"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_send_stops_within_the_grace_and_the_next_send_duplicates_nothing() {
    let server = CaptureServer::start_args(&["--delay", "3"]);
    let site = smtp_site_on_port(server.port, "", "concurrency = 2", 8);
    site.edit(
        "config.toml",
        "[delivery]",
        "[daemon]\nshutdown_grace = \"1s\"\n\n[delivery]",
    );
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gazette"))
        .args(["send", "--digest", "essays"])
        .current_dir(site.dir.path())
        .env_remove("GAZETTE_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Two messages are at the relay, each held 3 s before its final reply.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().unwrap();
    let sent_at = std::time::Instant::now();
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stopped_in = sent_at.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("Stopping on SIGINT"), "{stderr}");
    assert!(stderr.contains("still owed"), "{stderr}");
    // Not a speed assertion: the stop waited for the grace, not for the relay's 3 s.
    assert!(stopped_in < Duration::from_millis(2900), "{stopped_in:?}");
    let accepted_before = server.count();
    assert!(accepted_before < 8);

    // The next send delivers the rest; nobody gets two copies of what was accepted.
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mut per: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for m in server.messages() {
        let id = crate::common::Mail::parse(&m.raw).message_id;
        per.entry(m.rcpt_tos[0].clone()).or_default().push(id);
    }
    assert_eq!(per.len(), 8, "{per:?}");
    for (to, ids) in &per {
        // Only a message in flight at the stop may come twice, with one Message-ID.
        assert!(
            ids.len() <= 2 && ids.iter().all(|i| i == &ids[0]),
            "{to}: {ids:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_reply_to_the_final_dot_is_waited_for_not_sent_twice() {
    // Each final dot is answered after 3 s; every other reply at once.
    let server = CaptureServer::start_args(&["--delay", "3"]);
    let site = smtp_site_on_port(server.port, "", "concurrency = 4", 4);
    // Commands must answer within 1 s; the final dot gets the default 10 minutes.
    site.edit("config.toml", "timeout = \"5s\"", "timeout = \"1s\"");
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("timed out"), "{}", run.stderr);
    let mut got: Vec<String> = server
        .messages()
        .into_iter()
        .flat_map(|m| m.rcpt_tos)
        .collect();
    got.sort();
    assert_eq!(got.len(), 4, "once each: {got:?}");
    got.dedup();
    assert_eq!(got.len(), 4);
}

#[test]
fn an_empty_database_file_is_refused_with_a_way_out() {
    let site = Site::new();
    std::fs::write(site.path("gazette.db"), b"").unwrap();
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("is an empty file (0 bytes)")
            && run.stderr.contains("delete it to start a new database"),
        "{}",
        run.stderr
    );
    assert!(site.emls_in("outbox").is_empty());
    assert_eq!(
        std::fs::metadata(site.path("gazette.db")).unwrap().len(),
        0,
        "left as it was"
    );
}

#[test]
fn a_database_in_a_read_only_folder_is_one_clear_line() {
    let site = Site::new();
    site.edit(
        "config.toml",
        "path = \"gazette.db\"",
        "path = \"state/gazette.db\"",
    );
    std::fs::create_dir_all(site.path("state")).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
        .arg(site.path("state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = site.gazette(&["send"]);
    let _ = Command::new("umount")
        .arg("-l")
        .arg(site.path("state"))
        .status();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains("state/gazette.db"), "{}", lines[0]);
    assert!(
        lines[0].contains("is read-only or not writable"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[0].matches("unable to open").count(),
        0,
        "{}",
        lines[0]
    );
}

#[test]
fn a_symlink_to_the_database_takes_the_same_lock() {
    let site = Site::new();
    assert_eq!(site.gazette(&["send"]).code, 0);
    let held = gazette::daemon::lock(&site.path("gazette.db")).unwrap();
    std::os::unix::fs::symlink(site.path("gazette.db"), site.path("other.db")).unwrap();
    let err = gazette::daemon::lock(&site.path("other.db")).unwrap_err();
    assert!(err.to_string().contains("is already running on"), "{err}");
    drop(held);
    assert!(gazette::daemon::lock(&site.path("other.db")).is_ok());
}
