//! A real Postfix (Debian's package), started per test with its own config folder,
//! queue and log under a scratch folder: smtpd on a loopback port, virtual(8) delivering
//! the domain `gazette.test` into Maildirs (with `+` extensions), and its own bounce
//! daemon writing the delivery status notifications. Needs root (CI runs as root);
//! scripts/test installs postfix when missing.

use crate::common::free_port;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Postfix {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

/// Runs a postfix command; Postfix says why it failed only on a terminal, so its own
/// log file is shown instead.
fn postfix(conf: &Path, args: &[&str], log: &Path) {
    let out = Command::new("/usr/sbin/postfix")
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .expect("Postfix is not installed (scripts/test installs postfix)");
    assert!(
        out.status.success(),
        "postfix {args:?} failed: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

impl Postfix {
    /// Starts Postfix with a Maildir for each of `mailboxes` (local parts at gazette.test).
    pub fn start(mailboxes: &[&str]) -> Postfix {
        Postfix::start_piping(mailboxes, None)
    }

    /// The same, with mail to `pipe.0` (and its `+` extensions) handed to the command
    /// `pipe.1` by Postfix's pipe(8) as `nobody`, as the README tells an operator to.
    pub fn start_piping(mailboxes: &[&str], pipe: Option<(&str, &str)>) -> Postfix {
        assert!(
            rustix::process::geteuid().is_root(),
            "the Postfix tests run Postfix itself, which needs root (CI runs as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        for d in ["conf", "queue", "data", "mail"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        // The scratch folder is 0700; Postfix's daemons run as `postfix` and `nobody`.
        chmod(t, 0o755);
        chown(&t.join("data"), "postfix");
        chown(&t.join("mail"), "nobody");
        let port = free_port();
        let vmailbox: String = mailboxes
            .iter()
            .map(|m| format!("{m}@gazette.test {m}/\n"))
            .collect();
        std::fs::write(t.join("conf/vmailbox"), vmailbox).unwrap();
        let transport = pipe
            .map(|(address, _)| format!("{address} gazette:\n"))
            .unwrap_or_default();
        std::fs::write(t.join("conf/transport"), transport).unwrap();
        let pipe_service = pipe
            .map(|(_, argv)| format!("gazette   unix  - n n - - pipe user=nobody argv={argv}\n"))
            .unwrap_or_default();
        let root = t.display();
        std::fs::write(
            t.join("conf/main.cf"),
            format!(
                "compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.gazette.test
mydomain = gazette.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
virtual_mailbox_domains = gazette.test
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = texthash:{root}/conf/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
transport_maps = texthash:{root}/conf/transport
gazette_destination_recipient_limit = 1
recipient_delimiter = +
# Accept unknown recipients, so that virtual(8) bounces them after the fact: the
# delivery status notification a reader's dead mailbox causes at a remote MTA.
smtpd_reject_unlisted_recipient = no
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
smtputf8_enable = no
alias_maps =
alias_database =
local_recipient_maps =
biff = no
"
            ),
        )
        .unwrap();
        // No chroot: the scratch folder has no copy of /etc.
        std::fs::write(
            t.join("conf/master.cf"),
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
{pipe_service}"
            ),
        )
        .unwrap();
        let pf = Postfix { dir, port };
        postfix(&pf.conf(), &["start"], &pf.log());
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "Postfix did not listen on {port}:\n{}",
                std::fs::read_to_string(pf.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pf
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("maillog")
    }

    /// A mailbox's Maildir.
    pub fn maildir(&self, mailbox: &str) -> PathBuf {
        self.dir.path().join("mail").join(mailbox)
    }

    /// Files in a mailbox's `new/` (or `cur/`), by name.
    pub fn files(&self, mailbox: &str, sub: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.maildir(mailbox).join(sub))
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Waits until a mailbox's `new/` holds `n` messages, and returns them.
    pub fn wait_for(&self, mailbox: &str, n: usize) -> Vec<PathBuf> {
        let started = Instant::now();
        loop {
            let files = self.files(mailbox, "new");
            if files.len() >= n {
                return files;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{mailbox} got {} of {n} messages in 30 s; Postfix log:\n{}",
                files.len(),
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until Postfix's queue is empty (everything delivered or bounced).
    pub fn settle(&self) {
        let started = Instant::now();
        loop {
            let queued = ["incoming", "active", "deferred", "maildrop"]
                .iter()
                .map(|q| count_files(&self.dir.path().join("queue").join(q)))
                .sum::<usize>();
            if queued == 0 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Postfix queue did not empty"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Hands one message to Postfix over SMTP.
    pub fn submit(&self, from: &str, to: &str, message: &str) {
        let mut w = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(w.try_clone().unwrap());
        expect(&mut r, "220");
        let body: String = message
            .replace("\r\n", "\n")
            .lines()
            .map(|l| {
                if l.starts_with('.') {
                    format!(".{l}\r\n")
                } else {
                    format!("{l}\r\n")
                }
            })
            .collect();
        for (line, code) in [
            ("EHLO fbl.test".to_owned(), "250"),
            (format!("MAIL FROM:<{from}>"), "250"),
            (format!("RCPT TO:<{to}>"), "250"),
            ("DATA".to_owned(), "354"),
            (format!("{body}."), "250"),
            ("QUIT".to_owned(), "221"),
        ] {
            w.write_all(line.as_bytes()).unwrap();
            w.write_all(b"\r\n").unwrap();
            expect(&mut r, code);
        }
    }
}

/// Reads one SMTP reply (all its lines) and checks its code.
fn expect(r: &mut BufReader<TcpStream>, code: &str) {
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            return;
        }
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, user: &str) {
    let ok = Command::new("chown").arg(user).arg(p).status().unwrap();
    assert!(ok.success(), "chown {user} {}", p.display());
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // `abort`: no waiting for queued mail; the folder is deleted next.
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.conf())
            .arg("abort")
            .output();
    }
}
