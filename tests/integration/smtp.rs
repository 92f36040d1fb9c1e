//! Delivery over SMTP to a real server (aiosmtpd, started per test on a loopback port):
//! every message checked as received, STARTTLS, AUTH, DKIM verified by dkimpy, bodies
//! that must survive SMTP, and header injection attempts.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{Mail, Site};
use crate::smtp_support::{dkim_verify, CaptureServer};

/// A copy of the shipped publication delivering over SMTP to `server`, with `n`
/// subscribers of the essays digest (`sub00@example.org`, …) instead of the shipped ones.
pub fn smtp_site(server: &CaptureServer, smtp_extra: &str, delivery_extra: &str, n: usize) -> Site {
    smtp_site_on_port(server.port, smtp_extra, delivery_extra, n)
}

/// The same, for any SMTP server on a loopback port.
pub fn smtp_site_on_port(port: u16, smtp_extra: &str, delivery_extra: &str, n: usize) -> Site {
    let site = Site::new();
    let cfg = site.read("config.toml");
    let start = cfg.find("[delivery]").unwrap();
    let end = start + cfg[start..].find("\n[[source]]").unwrap();
    let subs = cfg.find("[[subscriber]]").unwrap();
    let mut out = String::new();
    out.push_str(&cfg[..start]);
    out.push_str(&format!(
        "[delivery]\ntransport = \"smtp\"\nretry_base = \"100ms\"\n{delivery_extra}\n\n[delivery.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\"\n{smtp_extra}\n"
    ));
    out.push_str(&cfg[end..subs]);
    for i in 0..n {
        out.push_str(&format!(
            "[[subscriber]]\nemail = \"sub{i:02}@example.org\"\nname = \"Subscriber {i:02}\"\ndigests = [\"essays\"]\n\n"
        ));
    }
    site.write("config.toml", &out);
    site
}

/// Turns on the web endpoint's links (nothing needs to listen for these tests).
fn with_web(site: &Site) {
    site.edit(
        "config.toml",
        "[delivery]",
        "[web]\nlisten = \"127.0.0.1:0\"\n\n[delivery]",
    );
}

#[test]
fn delivers_an_edition_to_50_subscribers_each_message_whole_and_private() {
    let server = CaptureServer::start();
    let site = smtp_site(&server, "", "concurrency = 4", 50);
    with_web(&site);
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("Digest `essays` edition #1: 3 essays, 0 replies; sent 50."),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Sent 50 messages in"), "{}", run.stdout);

    let got = server.messages();
    assert_eq!(got.len(), 50, "exactly once each");
    let all: Vec<String> = (0..50).map(|i| format!("sub{i:02}@example.org")).collect();
    let mut seen = BTreeSet::new();
    let mut one_click_urls = BTreeSet::new();
    for c in &got {
        assert_eq!(c.mail_from, "digest@longmargin.example.org");
        assert_eq!(c.rcpt_tos.len(), 1);
        let to = &c.rcpt_tos[0];
        assert!(seen.insert(to.clone()), "{to} twice");
        let m = Mail::parse(&c.raw);
        assert_eq!(&m.to_addr, to, "To matches the envelope");
        assert_eq!(
            m.types,
            vec!["multipart/alternative", "text/plain", "text/html"]
        );
        let raw = String::from_utf8_lossy(&c.raw);
        for h in [
            "\r\nList-Id: ",
            "\r\nList-Unsubscribe: <https://longmargin.example.org/unsubscribe/",
            "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            "<mailto:digest+unsubscribe.",
            "@longmargin.example.org?subject=unsubscribe%20essays>",
            "\r\nAuto-Submitted: auto-generated\r\n",
            "\r\nDate: ",
            "\r\nMessage-ID: <essays.1.",
        ] {
            assert!(raw.contains(h), "{h:?} missing in\n{raw}");
        }
        let header = m.list_unsubscribe.clone().unwrap();
        let url = header
            .split(['<', '>'])
            .find(|p| p.starts_with("https://"))
            .unwrap()
            .to_owned();
        assert!(
            m.text.contains(&format!("Unsubscribe: {url}")) && m.html.contains(">Unsubscribe</a>"),
            "the body links to the reader's own unsubscribe page"
        );
        assert!(one_click_urls.insert(url), "each reader has their own link");
        for other in &all {
            if other != to {
                assert!(
                    !raw.contains(other.as_str()),
                    "{other} leaked into {to}'s message"
                );
            }
        }
    }
    assert_eq!(seen.len(), 50);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'sent'"),
        50
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE claimed_by IS NOT NULL"),
        0
    );
}

#[test]
fn bodies_survive_smtp_long_lines_and_lone_dots() {
    let server = CaptureServer::start();
    let site = smtp_site(&server, "", "", 1);
    let long = "x".repeat(2000);
    site.edit(
        "templates/default/digest.txt",
        "{% block content %}",
        &format!("{{% block content %}}\nLONG:{long}\n.\n..\nAfter the dots.\n"),
    );
    site.edit(
        "templates/default/digest.html",
        "{% block content %}",
        &format!("{{% block content %}}<p>LONG:{long}</p>\n.\n"),
    );
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = server.messages();
    assert_eq!(got.len(), 1);
    let raw = &got[0].raw;
    assert!(
        raw.split(|b| *b == b'\n').all(|l| l.len() <= 1000),
        "no line over 998 octets on the wire"
    );
    let m = Mail::parse(raw);
    assert!(
        m.text
            .contains(&format!("LONG:{long}\n.\n..\nAfter the dots.")),
        "{}",
        m.text
    );
    assert!(m.html.contains(&format!("LONG:{long}")));
}

#[test]
fn starttls_with_a_private_ca_and_auth_from_the_environment() {
    let server = CaptureServer::start_with(true, Some("gazette:s3cret-Pa55"));
    let ca = server.ca.clone().unwrap();
    let site = smtp_site(
        &server,
        &format!(
            "username = \"gazette\"\npassword_env = \"GAZETTE_TEST_SMTP_PASSWORD\"\nca_file = \"{}\"",
            ca.display()
        ),
        "",
        3,
    );
    site.edit("config.toml", "tls = \"none\"", "tls = \"starttls\"");
    let run = site.gazette_env(
        &["-vv", "send", "--digest", "essays"],
        &[("GAZETTE_TEST_SMTP_PASSWORD", "s3cret-Pa55")],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let got = server.messages();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|c| c.tls && c.authenticated), "{got:?}");
    assert!(
        !run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"),
        "the password is never printed"
    );

    // A wrong password: nothing sent, a clear reason, still no password in the output.
    let server = CaptureServer::start_with(true, Some("gazette:s3cret-Pa55"));
    let site = smtp_site(
        &server,
        &format!(
            "username = \"gazette\"\npassword_env = \"GAZETTE_TEST_SMTP_PASSWORD\"\nca_file = \"{}\"",
            server.ca.clone().unwrap().display()
        ),
        "max_attempts = 1\nretry_within_run = \"0s\"",
        1,
    );
    site.edit("config.toml", "tls = \"none\"", "tls = \"starttls\"");
    let run = site.gazette_env(
        &["send", "--digest", "essays"],
        &[("GAZETTE_TEST_SMTP_PASSWORD", "wrong-Pa55")],
    );
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    // An AUTH refusal is the relay's, not the recipient's: the edition waits.
    assert!(
        run.stderr.contains("paused") && run.stderr.contains("Nothing was marked failed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM delivery WHERE status = 'failed'"),
        0
    );
    assert_eq!(site.count("SELECT MAX(attempts) FROM delivery"), 0);
    assert!(run.stderr.to_lowercase().contains("auth"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong-Pa55") && !run.stdout.contains("wrong-Pa55"));
    assert_eq!(server.count(), 0);
}

#[test]
fn a_missing_password_variable_is_a_config_error_naming_it_not_its_value() {
    let server = CaptureServer::start();
    let site = smtp_site(
        &server,
        "username = \"gazette\"\npassword_env = \"GAZETTE_NOT_SET_ANYWHERE\"",
        "",
        1,
    );
    let run = site.gazette(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("`delivery.smtp.password_env`: environment variable GAZETTE_NOT_SET_ANYWHERE is not set"),
        "{}",
        run.stderr
    );
}

fn dkim_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dkim")
        .join(name)
}

fn dkim_round_trip(key: &Path, record: &Path, algorithm: &str) {
    let server = CaptureServer::start();
    let site = smtp_site(&server, "", "", 2);
    with_web(&site);
    let cfg = site.read("config.toml").replace(
        "[delivery.smtp]",
        &format!(
            "[delivery.dkim]\nselector = \"test\"\nkey_file = \"{}\"\n\n[delivery.smtp]",
            key.display()
        ),
    );
    site.write("config.toml", &cfg);
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = server.messages();
    assert_eq!(got.len(), 2);
    for c in &got {
        let raw = String::from_utf8_lossy(&c.raw);
        let sig: String = raw
            .split("\r\n")
            .skip_while(|l| !l.starts_with("DKIM-Signature:"))
            .take_while(|l| {
                l.starts_with("DKIM-Signature:") || l.starts_with(' ') || l.starts_with('\t')
            })
            .collect::<Vec<_>>()
            .join("")
            .replace([' ', '\t'], "");
        assert!(sig.contains(&format!("a={algorithm}-sha256")), "{sig}");
        assert!(
            sig.contains("d=longmargin.example.org") && sig.contains("s=test"),
            "{sig}"
        );
        let h = sig
            .split(";h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_lowercase();
        for name in [
            "from",
            "subject",
            "date",
            "message-id",
            "to",
            "list-unsubscribe",
            "list-unsubscribe-post",
            "reply-to",
            "mime-version",
        ] {
            assert!(h.split(':').any(|x| x == name), "h= lacks {name}: {h}");
        }
        for name in [
            "from",
            "subject",
            "list-unsubscribe",
            "list-unsubscribe-post",
        ] {
            assert_eq!(
                h.split(':').filter(|x| *x == name).count(),
                2,
                "{name} is not over-signed: {h}"
            );
        }
        let (ok, out) = dkim_verify(&c.path, record);
        assert!(ok, "dkimpy rejected the signature: {out}");
        // And the verifier is not a rubber stamp: a changed subject fails.
        let tampered = c.path.with_extension("tampered");
        std::fs::write(&tampered, raw.replacen("Subject: ", "Subject: Re: ", 1)).unwrap();
        let (ok, _) = dkim_verify(&tampered, record);
        assert!(!ok, "a tampered message must not verify");
        // Over-signing: a From or a List-Unsubscribe prepended to the signed copy (what a
        // reader's client would show or use first) breaks the signature.
        for extra in [
            "From: Support <help@phish.example>\r\n",
            "List-Unsubscribe: <https://phish.example/u>\r\n",
        ] {
            std::fs::write(&tampered, format!("{extra}{raw}")).unwrap();
            let (ok, out) = dkim_verify(&tampered, record);
            assert!(!ok, "a prepended {extra:?} still verifies: {out}");
        }
        // Nor does one whose one-click link was swapped for someone else's.
        std::fs::write(
            &tampered,
            raw.replacen("/unsubscribe/", "/unsubscribe/X", 1),
        )
        .unwrap();
        let (ok, _) = dkim_verify(&tampered, record);
        assert!(!ok, "a changed List-Unsubscribe must not verify");
    }
}

#[test]
fn dkim_rsa_signatures_verify_with_dkimpy() {
    dkim_round_trip(&dkim_fixture("rsa.pem"), &dkim_fixture("rsa.txt"), "rsa");
}

#[test]
fn dkim_ed25519_signatures_verify_with_dkimpy() {
    dkim_round_trip(
        &dkim_fixture("ed25519.key"),
        &dkim_fixture("ed25519.txt"),
        "ed25519",
    );
}

/// Runs a shell pipeline (the README's key recipe) and returns its stdout.
fn sh(script: &str, dir: &Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn keys_made_by_openssl_today_sign_and_the_readme_recipe_gives_their_record() {
    let dir = tempfile::tempdir().unwrap();
    // OpenSSL 3 writes PKCS#8 ("BEGIN PRIVATE KEY") for both.
    sh("openssl genrsa -out rsa.pem 2048 2>/dev/null", dir.path());
    assert!(std::fs::read_to_string(dir.path().join("rsa.pem"))
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    let p = sh(
        "openssl rsa -in rsa.pem -pubout -outform DER 2>/dev/null | base64 -w0",
        dir.path(),
    );
    std::fs::write(dir.path().join("rsa.txt"), format!("v=DKIM1; k=rsa; p={p}")).unwrap();
    dkim_round_trip(
        &dir.path().join("rsa.pem"),
        &dir.path().join("rsa.txt"),
        "rsa",
    );

    sh("openssl genpkey -algorithm ed25519 -out ed.pem", dir.path());
    let p = sh(
        "openssl pkey -in ed.pem -pubout -outform DER | tail -c 32 | base64 -w0",
        dir.path(),
    );
    std::fs::write(
        dir.path().join("ed.txt"),
        format!("v=DKIM1; k=ed25519; p={p}"),
    )
    .unwrap();
    dkim_round_trip(
        &dir.path().join("ed.pem"),
        &dir.path().join("ed.txt"),
        "ed25519",
    );
}

#[test]
fn injection_attempts_leave_one_recipient_and_one_subject() {
    let server = CaptureServer::start();
    let site = smtp_site(&server, "", "", 1);
    let title = format!(
        "Evil\\r\\nBcc: victim@example.com\\u0000 \\u202e{}",
        "long ".repeat(2000)
    );
    site.write(
        "examples/site/essays/injection.md",
        &format!("+++\ntitle = \"{title}\"\n+++\nBody.\n"),
    );
    site.edit(
        "config.toml",
        "subject = \"{{ site.name }}: {{ essays | length }}",
        "subject = \"{{ essays.0.title }} | {{ site.name }}: {{ essays | length }}",
    );
    site.edit(
        "config.toml",
        "name = \"Subscriber 00\"",
        "name = \"Sub\\r\\nBcc: victim2@example.com\\u0000\\u202e\"",
    );
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, vec!["sub00@example.org".to_owned()]);
    let raw = String::from_utf8_lossy(&got[0].raw);
    let headers = raw.split("\r\n\r\n").next().unwrap();
    let names: Vec<String> = headers
        .split("\r\n")
        .filter(|l| !l.starts_with(' ') && !l.starts_with('\t'))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_ascii_lowercase()))
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "subject").count(),
        1,
        "{headers}"
    );
    assert_eq!(names.iter().filter(|n| *n == "to").count(), 1, "{headers}");
    assert!(!names.iter().any(|n| n == "bcc"), "{headers}");
    assert!(!raw.contains('\0'));
    let m = Mail::parse(&got[0].raw);
    assert_eq!(m.to_count, 1);
    assert!(
        m.subject.starts_with("Evil Bcc: victim@example.com"),
        "{}",
        m.subject
    );
    assert!(!m.subject.contains('\n'));
}

#[test]
fn check_warns_when_smtp_mail_would_miss_what_gmail_and_yahoo_require() {
    let server = CaptureServer::start();
    let site = smtp_site(&server, "", "", 1);
    let run = site.gazette(&["check"]);
    assert_eq!(run.code, 0, "warnings, not errors: {run:?}");
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 2, "{}", run.stderr);
    assert!(
        warnings[0].contains("without `[delivery.dkim]`"),
        "{}",
        warnings[0]
    );
    assert!(warnings[1].contains("without `[web]`") && warnings[1].contains("one-click"));
    // Both in place: nothing to warn about.
    with_web(&site);
    site.edit(
        "config.toml",
        "[delivery.smtp]",
        &format!(
            "[delivery.dkim]\nselector = \"test\"\nkey_file = \"{}\"\n\n[delivery.smtp]",
            dkim_fixture("rsa.pem").display()
        ),
    );
    let run = site.gazette(&["check"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
    // The outbox transport sends nothing to Gmail: no warning there either.
    let plain = Site::new();
    assert!(!plain.gazette(&["check"]).stderr.contains("warning:"));
}

#[test]
fn the_envelope_sender_is_the_return_path_and_with_verp_names_each_message() {
    // Default: the From address.
    let server = CaptureServer::start();
    let site = smtp_site(&server, "", "", 1);
    assert_eq!(site.gazette(&["send", "--digest", "essays"]).code, 0);
    assert_eq!(
        server.messages()[0].mail_from,
        "digest@longmargin.example.org"
    );

    // return_path alone.
    let server = CaptureServer::start();
    let site = smtp_site(
        &server,
        "",
        "return_path = \"bounces@longmargin.example.org\"",
        1,
    );
    assert_eq!(site.gazette(&["send", "--digest", "essays"]).code, 0);
    assert_eq!(
        server.messages()[0].mail_from,
        "bounces@longmargin.example.org"
    );

    // VERP: bounces+<the Message-ID's local part>@domain, one per message.
    let server = CaptureServer::start();
    let site = smtp_site(
        &server,
        "",
        "return_path = \"bounces@longmargin.example.org\"\nverp = true",
        3,
    );
    let run = site.gazette(&["send", "--digest", "essays"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = server.messages();
    assert_eq!(got.len(), 3);
    let mut senders = BTreeSet::new();
    for c in &got {
        let m = Mail::parse(&c.raw);
        let tag = m.message_id.split('@').next().unwrap().to_owned();
        assert!(tag.starts_with("essays.1."), "{tag}");
        assert_eq!(c.mail_from, format!("bounces+{tag}@longmargin.example.org"));
        senders.insert(c.mail_from.clone());
    }
    assert_eq!(senders.len(), 3, "one envelope sender per message");

    // A return path that already has a +tag cannot take VERP's.
    site.edit(
        "config.toml",
        "return_path = \"bounces@longmargin.example.org\"",
        "return_path = \"bounces+x@longmargin.example.org\"",
    );
    let check = site.gazette(&["check"]);
    assert_eq!(check.code, 1);
    assert!(
        check.stderr.contains("config.toml:") && check.stderr.contains("`delivery.return_path`"),
        "{}",
        check.stderr
    );
}
