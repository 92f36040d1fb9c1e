//! Faults a real server cannot be told to make, from a scripted SMTP peer: a 451 then
//! success, a 550 5.1.1 for one recipient, a connection dropped before the final reply,
//! and a server that stalls. Each must end with every message delivered once (or failed
//! and bounced), without hanging.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::smtp::smtp_site_on_port;

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// The first DATA gets 451, later ones 250.
    TempFailOnce,
    /// RCPT TO this address gets 550 5.1.1.
    NoSuchUser(&'static str),
    /// The first DATA is read, then the connection is closed without a reply.
    DropBeforeFinalOnce,
    /// The first DATA is read, then nothing is said for a minute.
    StallOnce,
    /// Every connection is closed by the server right after its message is accepted, as
    /// relays do to idle connections.
    CloseAfterEachMessage,
}

/// (recipient, message) of every message answered 250.
type Accepted = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

struct FakeSmtp {
    port: u16,
    accepted: Accepted,
}

async fn start(fault: Fault) -> FakeSmtp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted: Accepted = Arc::new(Mutex::new(Vec::new()));
    let data_count = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acc = acc.clone();
            let data_count = data_count.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 fake.test ESMTP scripted\r\n").await;
                let mut rcpt = String::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        "250-fake.test\r\n250 8BITMIME\r\n".into()
                    } else if upper.starts_with("MAIL FROM") {
                        "250 2.1.0 OK\r\n".into()
                    } else if upper.starts_with("RCPT TO") {
                        rcpt = line[8..]
                            .trim()
                            .trim_start_matches(':')
                            .trim()
                            .trim_matches(['<', '>'])
                            .to_owned();
                        match fault {
                            Fault::NoSuchUser(bad) if rcpt == bad => {
                                format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n")
                            }
                            _ => "250 2.1.5 OK\r\n".into(),
                        }
                    } else if upper.starts_with("DATA") {
                        let _ = w
                            .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                            .await;
                        let mut data = Vec::new();
                        loop {
                            let mut l = Vec::new();
                            if r.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if l == b".\r\n" {
                                break;
                            }
                            data.extend_from_slice(&l);
                        }
                        let n = data_count.fetch_add(1, Ordering::SeqCst);
                        match fault {
                            Fault::TempFailOnce if n == 0 => "451 4.3.0 Try again later\r\n".into(),
                            Fault::DropBeforeFinalOnce if n == 0 => return,
                            Fault::StallOnce if n == 0 => {
                                tokio::time::sleep(Duration::from_secs(60)).await;
                                return;
                            }
                            Fault::CloseAfterEachMessage => {
                                acc.lock().unwrap().push((rcpt.clone(), data));
                                let _ = w.write_all(b"250 2.0.0 OK queued\r\n").await;
                                return;
                            }
                            _ => {
                                acc.lock().unwrap().push((rcpt.clone(), data));
                                "250 2.0.0 OK queued\r\n".into()
                            }
                        }
                    } else if upper.starts_with("QUIT") {
                        let _ = w.write_all(b"221 2.0.0 Bye\r\n").await;
                        return;
                    } else {
                        "250 2.0.0 OK\r\n".into()
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    FakeSmtp { port, accepted }
}

fn recipients(fake: &FakeSmtp) -> Vec<String> {
    let mut r: Vec<String> = fake
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|(to, _)| to.clone())
        .collect();
    r.sort();
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn a_451_is_retried_and_delivered_once() {
    let fake = start(Fault::TempFailOnce).await;
    let site = smtp_site_on_port(fake.port, "", "", 1);
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(recipients(&fake), vec!["sub00@example.org"]);
    assert!(
        run.stderr.contains("Deferred") && run.stderr.contains("451"),
        "{}",
        run.stderr
    );
    assert_eq!(
        site.count("SELECT attempts FROM delivery WHERE status = 'sent'"),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_550_5_1_1_fails_and_bounces_that_recipient_only() {
    let fake = start(Fault::NoSuchUser("sub01@example.org")).await;
    let site = smtp_site_on_port(fake.port, "", "", 3);
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 3, "some failed\n{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("sent 2, 1 failed (1 bounced)."),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("delivery to sub01@example.org failed") && run.stderr.contains("5.1.1"),
        "{}",
        run.stderr
    );
    assert_eq!(
        recipients(&fake),
        vec!["sub00@example.org", "sub02@example.org"]
    );
    let reply: String = site
        .db()
        .query_row(
            "SELECT d.last_reply FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id WHERE s.email = 'sub01@example.org'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        reply.contains("550") && reply.contains("User unknown"),
        "the server's reply is stored: {reply}"
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM subscriber WHERE status = 'bounced'"),
        1
    );

    // The next edition skips the bounced address.
    site.write(
        "examples/site/essays/later.md",
        "+++\ntitle = \"Later\"\n+++\nMore.\n",
    );
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("edition #2: 1 essay, 0 replies; sent 2."),
        "{}",
        run.stdout
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery d JOIN edition e ON e.id = d.edition_id JOIN subscriber s ON s.id = d.subscriber_id WHERE e.number = 2 AND s.email = 'sub01@example.org'"),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_before_the_final_reply_is_retried() {
    let fake = start(Fault::DropBeforeFinalOnce).await;
    let site = smtp_site_on_port(fake.port, "", "", 2);
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        recipients(&fake),
        vec!["sub00@example.org", "sub01@example.org"]
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'"),
        2
    );
    assert_eq!(site.count("SELECT MAX(attempts) FROM delivery"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_server_times_out_and_the_message_is_retried() {
    let fake = start(Fault::StallOnce).await;
    let site = smtp_site_on_port(fake.port, "", "", 1);
    // The stall is in the reply to the final dot, which `data_timeout` bounds.
    site.edit(
        "config.toml",
        "timeout = \"5s\"",
        "timeout = \"1s\"\ndata_timeout = \"1s\"",
    );
    let started = std::time::Instant::now();
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(recipients(&fake), vec!["sub00@example.org"]);
    assert!(
        run.stderr.to_lowercase().contains("timed out")
            || run.stderr.to_lowercase().contains("timeout"),
        "{}",
        run.stderr
    );
    // Not a timing assertion on speed: only that the 60-second stall did not hold it up.
    assert!(started.elapsed() < Duration::from_secs(50));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_connection_the_server_closed_is_replaced_not_a_failure() {
    let fake = start(Fault::CloseAfterEachMessage).await;
    let site = smtp_site_on_port(fake.port, "", "concurrency = 1", 3);
    let run = site.gazette_async(&["send", "--digest", "essays"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        recipients(&fake),
        vec![
            "sub00@example.org",
            "sub01@example.org",
            "sub02@example.org"
        ]
    );
    assert!(
        !run.stderr.contains("Deferred"),
        "a closed idle connection is not a failure: {}",
        run.stderr
    );
    assert_eq!(site.count("SELECT MAX(attempts) FROM delivery"), 1);
}
