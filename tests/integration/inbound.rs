//! `gazette inbound`: bounces, complaints and mailto unsubscribes that come back, read
//! from real Postfix output (its own bounce daemon's DSN, a Maildir it delivered into)
//! and from fixtures in the shapes Exim, Gmail and Microsoft send.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{Run, Site};
use crate::postfix_support::Postfix;

/// The shipped publication sending through `postfix` from news@gazette.test with VERP,
/// to ghost (no such mailbox; essays), ada (both digests) and carmen (both).
fn site_on(postfix: &Postfix) -> Site {
    let site = Site::new();
    configure(&site, postfix.port);
    site
}

fn configure(site: &Site, port: u16) {
    let cfg = site.read("config.toml");
    let cut = cfg.find("[[subscriber]]").unwrap();
    let mut cfg = cfg[..cut].to_owned();
    cfg = cfg.replace(
        "from = \"The Long Margin <digest@longmargin.example.org>\"",
        "from = \"The Long Margin <news@gazette.test>\"",
    );
    let line = cfg
        .lines()
        .find(|l| l.starts_with("transport = "))
        .unwrap()
        .to_owned();
    cfg = cfg.replace(&line, "transport = \"smtp\"\nverp = true");
    cfg.push_str(&format!(
        "\n[delivery.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"10s\"\n\n"
    ));
    cfg.push_str(
        "[[subscriber]]\nemail = \"ghost@gazette.test\"\ndigests = [\"essays\"]\n\n\
         [[subscriber]]\nemail = \"ada@gazette.test\"\nname = \"Ada\"\n\n\
         [[subscriber]]\nemail = \"carmen@gazette.test\"\n",
    );
    site.write("config.toml", &cfg);
    let check = site.gazette(&["check"]);
    assert_eq!(check.code, 0, "{}{}\n{cfg}", check.stdout, check.stderr);
}

/// `gazette inbound` with `message` on stdin.
pub fn pipe(site: &Site, message: &[u8], args: &[&str]) -> Run {
    pipe_env(site, message, args, &[])
}

/// `gazette inbound` with `message` on stdin and extra environment variables.
pub fn pipe_env(site: &Site, message: &[u8], args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("inbound")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(site.dir.path())
        .env_remove("GAZETTE_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn status_of(site: &Site, email: &str) -> (String, Option<String>) {
    site.db()
        .query_row(
            "SELECT status, status_reason FROM subscriber WHERE email = ?1",
            [email],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// The digests a reader gets now (the subscription view: lists less what they left).
fn digests_of(site: &Site, email: &str) -> Vec<String> {
    let db = site.db();
    let mut stmt = db
        .prepare(
            "SELECT d.digest FROM subscription d JOIN subscriber s ON s.id = d.subscriber_id
             WHERE s.email = ?1 ORDER BY d.digest",
        )
        .unwrap();
    stmt.query_map([email], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn header(raw: &str, name: &str) -> String {
    let msg = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    msg.header_raw(name)
        .unwrap_or_else(|| panic!("no {name} in\n{raw}"))
        .trim()
        .to_owned()
}

/// The mailto address of a delivered message's List-Unsubscribe.
fn mailto_of(raw: &str) -> String {
    let lu = header(raw, "List-Unsubscribe");
    let start = lu.find("<mailto:").unwrap() + "<mailto:".len();
    let rest = &lu[start..];
    rest[..rest.find(['?', '>']).unwrap()].to_owned()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// The message in a Maildir folder whose Subject contains `subject`.
fn find<'a>(files: &'a [std::path::PathBuf], subject: &str) -> &'a std::path::PathBuf {
    files
        .iter()
        .find(|p| header(&read(p), "Subject").contains(subject))
        .unwrap_or_else(|| panic!("no message with subject {subject:?} among {files:?}"))
}

/// An ARF report (RFC 5965) as a mailbox provider's feedback loop sends it, about one
/// delivered message: the provider redacts the reader's address.
fn arf_about(original: &str) -> String {
    let redacted = original.replace("carmen@gazette.test", "redacted@gazette.test");
    format!(
        "From: Feedback Loop <fbl@feedback.mail.test>\r
To: news@gazette.test\r
Subject: FW: complaint\r
Message-ID: <fbl-report-0001@feedback.mail.test>\r
Date: Thu, 03 Dec 2026 09:00:00 +0000\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=feedback-report;\r
\tboundary=\"_----------=_fbl_0001\"\r
\r
This is a multi-part message in MIME format.\r
\r
--_----------=_fbl_0001\r
Content-Type: text/plain; charset=\"US-ASCII\"\r
Content-Disposition: inline\r
\r
This is an email abuse report for an email message received from 127.0.0.1.\r
\r
--_----------=_fbl_0001\r
Content-Type: message/feedback-report\r
Content-Disposition: inline\r
\r
Feedback-Type: abuse\r
User-Agent: FBL/1.0\r
Version: 1\r
Original-Rcpt-To: redacted@gazette.test\r
Source-IP: 127.0.0.1\r
Reported-Domain: gazette.test\r
\r
--_----------=_fbl_0001\r
Content-Type: message/rfc822\r
Content-Disposition: inline\r
\r
{redacted}\r
--_----------=_fbl_0001--\r
"
    )
}

#[test]
fn a_real_postfix_bounce_a_complaint_and_a_mailto_unsubscribe_change_the_next_edition() {
    let postfix = Postfix::start(&["news", "ada", "carmen"]);
    let site = site_on(&postfix);
    let sent = site.gazette(&["send"]);
    assert_eq!(sent.code, 0, "{}{}", sent.stdout, sent.stderr);
    postfix.settle();

    // Postfix accepted ghost@, found no such mailbox and its bounce daemon returned a
    // DSN to the VERP address, which virtual(8) delivered into news/ (the `+` tag
    // stripped for the mailbox, kept in X-Original-To and To).
    let bounce = postfix.wait_for("news", 1);
    assert_eq!(bounce.len(), 1, "one bounce");
    let dsn = read(&bounce[0]);
    assert!(dsn.contains("report-type=delivery-status"), "{dsn}");
    assert!(dsn.contains("Status: 5.1.1"), "{dsn}");
    let verp = header(&dsn, "To");
    assert!(verp.starts_with("news+essays.1."), "{verp}");

    // Piped in, as an MTA's pipe transport or procmail would: ghost is bounced.
    let run = pipe(&site, dsn.as_bytes(), &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("Read 1 message: 1 bounce; 1 reader changed."),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("bounce for ghost@gazette.test (essays): 5.1.1 unknown user")
            && run.stderr.contains("marked bounced"),
        "{}",
        run.stderr
    );
    let (status, reason) = status_of(&site, "ghost@gazette.test");
    assert_eq!(status, "bounced");
    let reason = reason.unwrap();
    assert!(reason.starts_with("5.1.1 unknown user"), "{reason}");
    let list = site.gazette(&["subscribers", "list"]);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("ghost@gazette.test")
                && l.contains("bounced")
                && l.contains("[5.1.1 unknown user")),
        "{}",
        list.stdout
    );

    // Ada's replies digest carries her own tagged mailto address; she mails it.
    let ada_mail = postfix.files("ada", "new");
    assert_eq!(ada_mail.len(), 2, "essays and replies for ada");
    let ada_replies = read(find(&ada_mail, "repl"));
    let mailto = mailto_of(&ada_replies);
    assert!(mailto.starts_with("news+unsubscribe."), "{mailto}");
    let ada_essays = read(find(&ada_mail, "essay"));
    assert_ne!(mailto_of(&ada_essays), mailto, "one tag per digest");
    postfix.submit(
        "ada@gazette.test",
        &mailto,
        &format!("From: Ada <ada@gazette.test>\r\nTo: {mailto}\r\nSubject: unsubscribe replies\r\nMessage-ID: <ada-leaves@gazette.test>\r\n\r\nunsubscribe\r\n"),
    );
    // A forged request: ada's essays address with one hex digit changed.
    let essays_mailto = mailto_of(&ada_essays);
    let (head, tail) = essays_mailto.split_once('@').unwrap();
    let last = head.chars().last().unwrap();
    let bent = format!(
        "{}{}@{tail}",
        &head[..head.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    postfix.submit(
        "mallory@gazette.test",
        &bent,
        &format!("From: <mallory@gazette.test>\r\nTo: {bent}\r\nSubject: unsubscribe\r\nMessage-ID: <forged@gazette.test>\r\n\r\nunsubscribe\r\n"),
    );
    // Carmen's provider reports her essays copy as spam.
    let carmen_mail = postfix.files("carmen", "new");
    let carmen_essays = read(find(&carmen_mail, "essay"));
    postfix.submit(
        "fbl@feedback.mail.test",
        "news@gazette.test",
        &arf_about(&carmen_essays),
    );
    // And a reader's reply, which is none of the above.
    postfix.submit(
        "bo@gazette.test",
        "news@gazette.test",
        "From: <bo@gazette.test>\r\nTo: news@gazette.test\r\nSubject: Re: New essays\r\nMessage-ID: <thanks@gazette.test>\r\n\r\nThanks, lovely essay.\r\n",
    );
    postfix.settle();
    let waiting = postfix.wait_for("news", 5);
    assert_eq!(waiting.len(), 5);

    let run = site.gazette(&[
        "inbound",
        "--maildir",
        postfix.maildir("news").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "Read 5 messages: 1 complaint, 1 unsubscribe request, 1 forged, 1 other, 1 read before; 2 readers changed."
        ),
        "{}",
        run.stdout
    );
    // Everything was filed into cur/; only the reader's reply is left unread there.
    assert!(postfix.files("news", "new").is_empty());
    let cur = postfix.files("news", "cur");
    assert_eq!(cur.len(), 5);
    let unread: Vec<_> = cur
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(":2,"))
        .collect();
    assert_eq!(unread.len(), 1, "{cur:?}");
    assert!(read(unread[0]).contains("Thanks, lovely essay."));
    assert!(
        cur.iter()
            .filter(|p| p.to_string_lossy().ends_with(":2,S"))
            .count()
            == 4
    );

    assert_eq!(
        status_of(&site, "carmen@gazette.test"),
        ("unsubscribed".into(), Some("complained".into()))
    );
    assert_eq!(
        status_of(&site, "ada@gazette.test"),
        ("active".into(), None)
    );
    assert_eq!(
        digests_of(&site, "ada@gazette.test"),
        vec!["essays".to_owned()]
    );

    // A second reading changes nothing and counts nothing twice.
    let again = site.gazette(&[
        "inbound",
        "--maildir",
        postfix.maildir("news").to_str().unwrap(),
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("Read 0 messages; 0 readers changed."),
        "{}",
        again.stdout
    );
    let st = site.gazette(&["status"]);
    assert!(
        st.stdout
            .contains("Inbound mail: 1 bounce, 1 complaint, 1 forged, 1 other, 1 unsubscribe"),
        "{}",
        st.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&site.gazette(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        json["inbound"]["kinds"],
        serde_json::json!([
            ["bounce", 1],
            ["complaint", 1],
            ["forged", 1],
            ["other", 1],
            ["unsubscribe", 1]
        ])
    );

    // The next edition: a new essay and a new reply. Only ada gets it, essays only.
    site.write(
        "examples/site/essays/after-the-bounce.md",
        "+++\ntitle = \"After the bounce\"\nauthor = \"A. Writer\"\n+++\n\nA new essay.\n",
    );
    let replies = site.read("examples/site/essays/the-ferry-timetable.replies.toml");
    site.write(
        "examples/site/essays/the-ferry-timetable.replies.toml",
        &format!("{replies}\n[[reply]]\nid = \"99\"\nauthor = \"New Voice\"\nbody = \"\"\"\nA late reply.\n\"\"\"\n"),
    );
    let next = site.gazette(&["send"]);
    assert_eq!(next.code, 0, "{}{}", next.stdout, next.stderr);
    postfix.settle();
    let ada_now = postfix.files("ada", "new");
    assert_eq!(ada_now.len(), 3, "ada got one more message: {ada_now:?}");
    let newest: Vec<String> = ada_now
        .iter()
        .filter(|p| !ada_mail.contains(p))
        .map(|p| read(p))
        .collect();
    assert!(
        header(&newest[0], "Subject").contains("essay"),
        "{}",
        newest[0]
    );
    assert_eq!(
        postfix.files("carmen", "new").len(),
        carmen_mail.len(),
        "carmen got nothing"
    );
    assert_eq!(
        postfix.files("news", "new").len(),
        0,
        "no new bounce: ghost was not mailed"
    );
    let ghost_rows = site.count(
        "SELECT COUNT(*) FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id
         JOIN edition e ON e.id = d.edition_id WHERE s.email = 'ghost@gazette.test' AND e.number > 1",
    );
    assert_eq!(ghost_rows, 0);
}

/// The shipped publication (outbox) with VERP and three more essays readers, sent once:
/// every reader's Message-ID, by address, for the essays digest.
fn sample_sent(extra_delivery: &str) -> (Site, std::collections::BTreeMap<String, String>) {
    let site = Site::new();
    site.edit(
        "config.toml",
        "[delivery]\n",
        &format!("[delivery]\nverp = true\n{extra_delivery}\n"),
    );
    let mut cfg = site.read("config.toml");
    for who in ["dan", "eve", "fay"] {
        cfg.push_str(&format!(
            "\n[[subscriber]]\nemail = \"{who}@reader.example\"\ndigests = [\"essays\"]\n"
        ));
    }
    site.write("config.toml", &cfg);
    let sent = site.gazette(&["send"]);
    assert_eq!(sent.code, 0, "{}{}", sent.stdout, sent.stderr);
    let ids = site
        .outbox_matching("essays-")
        .into_iter()
        .map(|m| (m.to_addr.clone(), format!("<{}>", m.message_id)))
        .collect();
    (site, ids)
}

/// A fixture with its placeholders filled for one delivery.
pub fn fixture(name: &str, rcpt: &str, message_id: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/inbound")
            .join(name),
    )
    .unwrap();
    let local = message_id
        .trim_matches(['<', '>'])
        .split('@')
        .next()
        .unwrap();
    text.replace("@@RCPT@@", rcpt)
        .replace("@@MESSAGE_ID@@", message_id)
        .replace(
            "@@VERP@@",
            &format!("digest+{local}@longmargin.example.org"),
        )
        .replace('\n', "\r\n")
}

#[test]
fn bounces_in_the_shapes_exim_gmail_and_microsoft_send_mark_their_readers_bounced() {
    let (site, ids) = sample_sent("");
    // Exim's classic text bounce (X-Failed-Recipients, the original pasted below) sent
    // to the plain From address: found by the pasted Message-ID.
    let exim = fixture(
        "exim-bounce.eml",
        "dan@reader.example",
        &ids["dan@reader.example"],
    );
    // Gmail: multipart/report inside multipart/related, to the VERP address.
    let gmail = fixture(
        "gmail-bounce.eml",
        "eve@reader.example",
        &ids["eve@reader.example"],
    );
    // Microsoft 365: an NDR to the plain address whose returned headers lost their
    // folding; found by the Message-ID line all the same.
    let microsoft = fixture(
        "microsoft-ndr.eml",
        "fay@reader.example",
        &ids["fay@reader.example"],
    );
    for (mail, who, status) in [
        (&exim, "dan@reader.example", "5.1.1"),
        (&gmail, "eve@reader.example", "5.1.1"),
        (&microsoft, "fay@reader.example", "5.1.10"),
    ] {
        let run = pipe(&site, mail.as_bytes(), &[]);
        assert_eq!(run.code, 0, "{who}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("1 bounce; 1 reader changed."),
            "{who}: {}",
            run.stdout
        );
        let (st, reason) = status_of(&site, who);
        assert_eq!(st, "bounced", "{who}");
        assert!(
            reason.as_deref().unwrap_or("").starts_with(status),
            "{who}: {reason:?}"
        );
    }
    assert!(status_of(&site, "ada@example.org").0 == "active");
    // The same bounce delivered twice (an MTA retrying its pipe) is counted once.
    let again = pipe(&site, gmail.as_bytes(), &[]);
    assert!(
        again.stdout.contains("1 read before; 0 readers changed."),
        "{}",
        again.stdout
    );
    assert_eq!(site.count("SELECT COUNT(*) FROM inbound"), 3);

    // The next edition skips all three.
    site.write(
        "examples/site/essays/after-the-bounces.md",
        "+++\ntitle = \"After the bounces\"\n+++\n\nA new essay.\n",
    );
    let next = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    let mut second: Vec<String> = site
        .outbox_matching("essays-0002-")
        .into_iter()
        .map(|m| m.to_addr)
        .collect();
    second.sort();
    assert_eq!(second, ["Bo.Chen@example.net", "ada@example.org"]);
}

#[test]
fn a_bounce_that_names_a_message_gazette_never_sent_changes_nothing() {
    let (site, ids) = sample_sent("");
    // A bounce for dan's address but a Message-ID Gazette never made (forged, or
    // another sender's mail): unmatched.
    let forged = fixture(
        "exim-bounce.eml",
        "dan@reader.example",
        "<essays.1.0123456789abcdef@longmargin.example.org>",
    );
    let run = pipe(&site, forged.as_bytes(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("1 unmatched; 0 readers changed."),
        "{}",
        run.stdout
    );
    assert_eq!(status_of(&site, "dan@reader.example").0, "active");
    // A real Message-ID, but the report says it failed for someone else.
    let crossed = fixture(
        "exim-bounce.eml",
        "eve@reader.example",
        &ids["dan@reader.example"],
    )
    .replace("E1tJq2v-0004Xk-2C@", "E1tJq9z-0009Zz-9Z@");
    let run = pipe(&site, crossed.as_bytes(), &[]);
    assert!(run.stdout.contains("1 unmatched"), "{}", run.stdout);
    assert_eq!(status_of(&site, "dan@reader.example").0, "active");
    assert_eq!(status_of(&site, "eve@reader.example").0, "active");
}

#[test]
fn temporary_failures_bounce_a_reader_only_after_the_limit_within_the_window() {
    let (site, ids) = sample_sent("soft_bounce_limit = 2\nsoft_bounce_window = \"30days\"");
    let dan = &ids["dan@reader.example"];
    let warn = fixture("exim-delayed.eml", "dan@reader.example", dan);
    let run = pipe(&site, warn.as_bytes(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("1 temporary failure; 0 readers changed."),
        "{}",
        run.stdout
    );
    // Exim repeats the warning for the same message: one delivery, counted once.
    let repeat = warn.replace("E1tK0aa-0007Pq-1x@", "E1tKLbb-0001Ab-2y@");
    let run = pipe(&site, repeat.as_bytes(), &[]);
    assert!(
        run.stdout
            .contains("1 temporary failure; 0 readers changed."),
        "{}",
        run.stdout
    );
    assert_eq!(status_of(&site, "dan@reader.example").0, "active");

    // A second edition fails for now as well: two deliveries, the limit: bounced.
    site.write(
        "examples/site/essays/another-week.md",
        "+++\ntitle = \"Another week\"\n+++\n\nA new essay.\n",
    );
    assert_eq!(site.gazette(&["send", "--digest", "essays"]).code, 0);
    let second = site
        .outbox_matching("essays-0002-")
        .into_iter()
        .find(|m| m.to_addr == "dan@reader.example")
        .map(|m| format!("<{}>", m.message_id))
        .unwrap();
    // Eve's first warning is 40 days old: outside the window, it does not count.
    let eve = fixture(
        "exim-delayed.eml",
        "eve@reader.example",
        &ids["eve@reader.example"],
    );
    let run = pipe(&site, eve.replace("E1tK0aa", "E1tKeve").as_bytes(), &[]);
    assert!(run.stdout.contains("1 temporary failure"), "{}", run.stdout);
    site.db()
        .execute(
            "UPDATE inbound SET received_at = '2026-01-01T00:00:00Z' WHERE detail LIKE '%' AND subscriber_id = (SELECT id FROM subscriber WHERE email = 'eve@reader.example')",
            [],
        )
        .unwrap();
    let eve_second = site
        .outbox_matching("essays-0002-")
        .into_iter()
        .find(|m| m.to_addr == "eve@reader.example")
        .map(|m| format!("<{}>", m.message_id))
        .unwrap();
    let run = pipe(
        &site,
        fixture("exim-delayed.eml", "eve@reader.example", &eve_second)
            .replace("E1tK0aa", "E1tKev2")
            .as_bytes(),
        &[],
    );
    assert!(run.stdout.contains("0 readers changed."), "{}", run.stdout);
    assert_eq!(status_of(&site, "eve@reader.example").0, "active");

    let run = pipe(
        &site,
        fixture("exim-delayed.eml", "dan@reader.example", &second)
            .replace("E1tK0aa", "E1tKdn2")
            .as_bytes(),
        &[],
    );
    assert!(
        run.stdout
            .contains("1 temporary failure; 1 reader changed."),
        "{}",
        run.stdout
    );
    let (st, reason) = status_of(&site, "dan@reader.example");
    assert_eq!(st, "bounced");
    let reason = reason.unwrap();
    assert!(
        reason.starts_with("2 temporary failures since "),
        "{reason}"
    );
    assert!(reason.contains("4.0.0 452 4.2.2"), "{reason}");
}

#[test]
fn a_message_that_cannot_be_recorded_is_kept_with_exit_75() {
    let (site, ids) = sample_sent("");
    let mail = fixture(
        "gmail-bounce.eml",
        "eve@reader.example",
        &ids["eve@reader.example"],
    );
    // The database cannot be opened (here: something else stands at its path).
    std::fs::rename(site.path("gazette.db"), site.path("kept.db")).unwrap();
    std::fs::create_dir(site.path("gazette.db")).unwrap();
    let run = pipe(&site, mail.as_bytes(), &[]);
    assert_eq!(run.code, 75, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("gazette.db"), "{}", run.stderr);
    assert!(run.stderr.contains("kept"), "{}", run.stderr);
    // From a Maildir the message stays in new/.
    let md = site.path("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    std::fs::write(md.join("new/1796300000.M1P1.mx"), &mail).unwrap();
    let run = site.gazette(&["inbound", "--maildir", "Maildir"]);
    assert_eq!(run.code, 75, "{}", run.stderr);
    assert!(md.join("new/1796300000.M1P1.mx").exists());
    // A broken config: 75 too (an MTA keeps the mail until it is fixed), naming the line.
    std::fs::remove_dir(site.path("gazette.db")).unwrap();
    std::fs::rename(site.path("kept.db"), site.path("gazette.db")).unwrap();
    let good = site.read("config.toml");
    site.write("config.toml", &format!("{good}\n[delivery.nonsense]\n"));
    let run = pipe(&site, mail.as_bytes(), &[]);
    assert_eq!(run.code, 75, "{}", run.stderr);
    assert!(run.stderr.contains("config.toml:"), "{}", run.stderr);
    site.write("config.toml", &good);
    // Fixed: the kept message is read and filed.
    let run = site.gazette(&["inbound", "--maildir", "Maildir"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("1 bounce; 1 reader changed."),
        "{}",
        run.stdout
    );
    assert!(md.join("cur/1796300000.M1P1.mx:2,S").exists());
    assert!(!md.join("new/1796300000.M1P1.mx").exists());
    // Not a Maildir: said so.
    let run = site.gazette(&["inbound", "--maildir", "examples"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("is not a Maildir"), "{}", run.stderr);
}

#[test]
fn postfix_pipes_a_bounce_straight_into_gazette_inbound_as_the_readme_says() {
    use std::os::unix::process::CommandExt;
    // The README's recipe: a pipe(8) service running `gazette … inbound --recipient
    // ${original_recipient}` as an unprivileged user, and transport_maps sending the
    // bounce address to it.
    let site = Site::new();
    let config = site.path("config.toml");
    // A copy the pipe's user can run wherever the checkout lives (CI's may be in a
    // folder only root may enter).
    let bin = site.path("bin/gazette");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_gazette"), &bin).unwrap();
    let argv = format!(
        "{} -c {} inbound --recipient ${{original_recipient}}",
        bin.display(),
        config.display()
    );
    let postfix = Postfix::start_piping(&["ada"], Some(("news@gazette.test", &argv)));
    configure(&site, postfix.port);
    // The publication belongs to the user the pipe runs as (`nobody` here).
    let owned = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(site.dir.path())
        .status()
        .unwrap();
    assert!(owned.success());
    // The site's tempdir is 0700: its new owner must be able to enter it.
    let open = Command::new("chmod")
        .arg("755")
        .arg(site.dir.path())
        .status()
        .unwrap();
    assert!(open.success());
    let sent = Command::new(&bin)
        .args(["send"])
        .current_dir(site.dir.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // Postfix bounces ghost@, its bounce daemon mails the DSN to the VERP address, and
    // the pipe hands it to Gazette: ghost is bounced with nobody running anything.
    wait_bounced(&site, &postfix, "ghost@gazette.test");
    let log = read(&postfix.log());
    assert!(
        log.lines().any(|l| l.contains("to=<news+essays.1.")
            && l.contains("relay=gazette")
            && l.contains("status=sent")),
        "{log}"
    );
    // carmen@ has no mailbox here either: her essays copy bounces too. (Her replies
    // copy may never be sent: when her first bounce is piped in while the send is still
    // running, the send skips her.) Every DSN Postfix piped is one row.
    wait_bounced(&site, &postfix, "carmen@gazette.test");
    postfix.settle();
    let piped = read(&postfix.log())
        .lines()
        .filter(|l| l.contains("relay=gazette") && l.contains("status=sent"))
        .count();
    assert!(piped >= 2, "{}", read(&postfix.log()));
    assert_eq!(site.count("SELECT COUNT(*) FROM inbound"), piped as i64);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM inbound WHERE kind = 'bounce'"),
        piped as i64
    );
    assert_eq!(status_of(&site, "ada@gazette.test").0, "active");
}

/// Waits (30 s at most) until Postfix's pipe has had `email` marked bounced.
fn wait_bounced(site: &Site, postfix: &Postfix, email: &str) {
    let started = std::time::Instant::now();
    while status_of(site, email).0 != "bounced" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{email} was not bounced; Postfix log:\n{}",
            read(&postfix.log())
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
