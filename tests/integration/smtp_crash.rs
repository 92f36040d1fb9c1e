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

#[test]
fn kill_9_at_twenty_points_loses_nobody_and_duplicates_stay_bounded() {
    let server = CaptureServer::start();
    let site = smtp_site(
        &server,
        "",
        &format!("concurrency = {CONCURRENCY}"),
        SUBSCRIBERS,
    );
    let step = SUBSCRIBERS / (KILLS + 2);
    // Message count at the start of each run, to attribute duplicates to restarts.
    let mut boundaries = Vec::new();
    let mut kills = 0;
    let mut first = true;
    while kills < KILLS {
        let before = server.count();
        boundaries.push(before);
        let args: &[&str] = if first {
            &["send", "--digest", "essays"]
        } else {
            &["send", "--resume"]
        };
        first = false;
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
    }
    assert!(kills >= 15, "only {kills} kill points were reached");
    boundaries.push(server.count());
    let run = site.gazette(&["send", "--resume"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    std::thread::sleep(Duration::from_millis(200));

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
