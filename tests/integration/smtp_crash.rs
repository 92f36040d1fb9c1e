//! kill -9 during delivery: the real binary sends a 500-subscriber edition to aiosmtpd
//! and is killed at 20 points; `send --resume` picks up each time. Every subscriber must
//! get the edition, each restart may re-send at most `concurrency` messages (the ones in
//! flight at the kill), and any duplicate carries the same Message-ID as its original.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Mail;
use crate::smtp::smtp_site;
use crate::smtp_support::CaptureServer;

const SUBSCRIBERS: usize = 500;
const CONCURRENCY: usize = 4;
const KILLS: usize = 20;

/// Sends the edition `first` starts, SIGKILLing the sender at about `KILLS` points and
/// resuming each time (calling `between` after each kill), then once more to the end.
/// Returns the kills and the message count at the start of each run.
fn soak(
    server: &CaptureServer,
    site: &crate::common::Site,
    first: &[&str],
    expected: usize,
    between: &dyn Fn(usize),
) -> (usize, Vec<usize>) {
    let step = expected / (KILLS + 2);
    // Message count at the start of each run, to attribute duplicates to restarts.
    let mut boundaries = Vec::new();
    let mut kills = 0;
    let mut first_run = true;
    while kills < KILLS {
        let before = server.count();
        boundaries.push(before);
        let args: &[&str] = if first_run {
            first
        } else {
            &["send", "--resume"]
        };
        first_run = false;
        let mut child = Command::new(env!("CARGO_BIN_EXE_gazette"))
            .args(args)
            .current_dir(site.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let target = before + step;
        let deadline = Instant::now() + Duration::from_secs(60);
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if server.count() >= target {
                break false;
            }
            assert!(
                Instant::now() < deadline,
                "no progress after {before} messages"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        if finished {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        // Let messages the dead process had fully handed over land at the server.
        std::thread::sleep(Duration::from_millis(300));
        between(kills);
    }
    assert!(kills >= 15, "only {kills} kill points were reached");
    boundaries.push(server.count());
    let run = site.gazette(&["send", "--resume"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    std::thread::sleep(Duration::from_millis(200));
    (kills, boundaries)
}

#[test]
fn kill_9_at_twenty_points_loses_nobody_and_duplicates_stay_bounded() {
    let server = CaptureServer::start();
    let site = smtp_site(
        &server,
        "",
        &format!("concurrency = {CONCURRENCY}"),
        SUBSCRIBERS,
    );
    let (kills, boundaries) = soak(
        &server,
        &site,
        &["send", "--digest", "essays"],
        SUBSCRIBERS,
        &|_| {},
    );
    let got = server.messages();
    let mut copies: HashMap<String, Vec<String>> = HashMap::new();
    let mut seen_before: Vec<std::collections::HashSet<String>> = Vec::new();
    let mut received = std::collections::HashSet::new();
    let mut duplicates_in_run = vec![0usize; boundaries.len()];
    for (i, c) in got.iter().enumerate() {
        let to = c.rcpt_tos[0].clone();
        let run_index = boundaries.iter().rposition(|b| i >= *b).unwrap_or(0);
        while seen_before.len() <= run_index {
            seen_before.push(received.clone());
        }
        if seen_before[run_index].contains(&to) || copies.contains_key(&to) {
            duplicates_in_run[run_index] += 1;
        }
        received.insert(to.clone());
        copies
            .entry(to)
            .or_default()
            .push(Mail::parse(&c.raw).message_id);
    }
    assert_eq!(
        copies.len(),
        SUBSCRIBERS,
        "every subscriber received the edition"
    );
    for (i, d) in duplicates_in_run.iter().enumerate() {
        assert!(
            *d <= CONCURRENCY,
            "run {i} re-sent {d} messages (> {CONCURRENCY}): {duplicates_in_run:?}"
        );
    }
    for (to, ids) in &copies {
        assert!(
            ids.iter().all(|id| id == &ids[0]),
            "{to} got different Message-IDs: {ids:?}"
        );
    }
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'"),
        SUBSCRIBERS as i64
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM edition WHERE finished_at IS NOT NULL"),
        1
    );
    let total_dupes: usize = duplicates_in_run.iter().sum();
    eprintln!("{kills} kills, {total_dupes} duplicates: {duplicates_in_run:?}");
}

/// Subscribers of the kill -9 test on a `replies = "followed"` digest.
const FOLLOWING: usize = 300;

#[test]
fn kill_9_in_a_followed_edition_delivers_each_frozen_copy_once_byte_for_byte() {
    let server = CaptureServer::start();
    let site = smtp_site(
        &server,
        "",
        &format!("concurrency = {CONCURRENCY}"),
        FOLLOWING,
    );
    site.edit(
        "config.toml",
        "include = \"replies\"\n",
        "include = \"replies\"\nreplies = \"followed\"\n",
    );
    let cfg = site
        .read("config.toml")
        .replace("digests = [\"essays\"]", "digests = [\"replies\"]");
    site.write("config.toml", &cfg);
    assert_eq!(site.gazette(&["gather"]).code, 0);
    let db = site.db();
    let essays: Vec<(i64, String)> = db
        .prepare("SELECT e.id, e.title FROM essay e WHERE EXISTS (SELECT 1 FROM reply r WHERE r.essay_key = e.key) ORDER BY e.id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(essays.len() >= 2, "{essays:?}");
    let subs: Vec<(i64, String)> = db
        .prepare("SELECT id, email FROM subscriber ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Reader i follows essay j when bit j of i is set: every subset, the empty one too.
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for (i, (sub, email)) in subs.iter().enumerate() {
        let mine: Vec<&(i64, String)> = essays
            .iter()
            .enumerate()
            .filter(|(j, _)| (i >> j) & 1 == 1)
            .map(|(_, e)| e)
            .collect();
        for (essay, _) in &mine {
            db.execute(
                "INSERT INTO follow (subscriber_id, essay_id, created_at) VALUES (?1, ?2, '2026-01-01T00:00:00.000000Z')",
                [sub, essay],
            )
            .unwrap();
        }
        if !mine.is_empty() {
            expected.insert(email.clone(), mine.iter().map(|(_, t)| t.clone()).collect());
        }
    }
    drop(db);
    let owed = expected.len();
    // After the first kill every follow is dropped: copies still owed must not change.
    let (kills, boundaries) = soak(
        &server,
        &site,
        &["send", "--digest", "replies"],
        owed,
        &|k| {
            if k == 1 {
                site.db().execute("DELETE FROM follow", []).unwrap();
            }
        },
    );
    let got = server.messages();
    let mut first_copy: HashMap<String, Vec<u8>> = HashMap::new();
    let mut duplicates_in_run = vec![0usize; boundaries.len()];
    for (i, c) in got.iter().enumerate() {
        let to = c.rcpt_tos[0].clone();
        let run_index = boundaries.iter().rposition(|b| i >= *b).unwrap_or(0);
        match first_copy.get(&to) {
            Some(original) => {
                duplicates_in_run[run_index] += 1;
                assert_eq!(
                    original, &c.raw,
                    "a resent copy to {to} is not byte-identical"
                );
            }
            None => {
                first_copy.insert(to, c.raw.clone());
            }
        }
    }
    assert_eq!(
        first_copy.len(),
        owed,
        "every copy owed, and only those, was delivered"
    );
    for d in &duplicates_in_run {
        assert!(*d <= CONCURRENCY, "{duplicates_in_run:?}");
    }
    let titles: Vec<&String> = essays.iter().map(|(_, t)| t).collect();
    for (to, raw) in &first_copy {
        let m = Mail::parse(raw);
        let want = &expected[to];
        for t in &titles {
            assert_eq!(
                m.text.contains(t.as_str()),
                want.contains(t),
                "{to} should carry exactly {want:?}:\n{}",
                m.text
            );
        }
    }
    eprintln!("{kills} kills, duplicates {duplicates_in_run:?}");
}
