//! Shared helpers: a temporary copy of the shipped publication, running the real binary,
//! and reading back what it delivered.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mail_parser::{MessageParser, MimeHeaders};

/// A loopback port nobody listens on now, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A temporary copy of the shipped config.toml, templates/ and examples/.
pub struct Site {
    pub dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What one run of the binary showed a user.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Site {
    pub fn new() -> Site {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        fs::copy(root.join("config.toml"), dir.path().join("config.toml")).unwrap();
        copy_dir(&root.join("templates"), &dir.path().join("templates"));
        copy_dir(&root.join("examples"), &dir.path().join("examples"));
        Site { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Replaces the first occurrence of `from` in a file, failing if it is not there.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    pub fn gazette(&self, args: &[&str]) -> Run {
        self.gazette_env(args, &[])
    }

    /// Runs the binary with extra environment variables.
    pub fn gazette_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_gazette"))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .env_remove("GAZETTE_LOG")
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the binary without blocking the async runtime (for tests whose servers run
    /// in it); a run that takes over two minutes fails the test instead of hanging it.
    pub async fn gazette_async(&self, args: &[&str]) -> Run {
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_gazette"))
                .args(args)
                .current_dir(self.dir.path())
                .env_remove("GAZETTE_LOG")
                .output(),
        )
        .await
        .expect("gazette finished within two minutes")
        .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every .eml in a folder, by file name.
    pub fn emls_in(&self, rel: &str) -> Vec<(String, Vec<u8>)> {
        let dir = self.path(rel);
        if !dir.exists() {
            return Vec::new();
        }
        let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    fs::read(&p).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// The outbox messages whose file name starts with `prefix` (e.g. `essays-0002-`).
    pub fn outbox_matching(&self, prefix: &str) -> Vec<Mail> {
        self.emls_in("outbox")
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, b)| Mail::parse(b))
            .collect()
    }

    pub fn outbox(&self) -> Vec<Mail> {
        self.emls_in("outbox")
            .iter()
            .map(|(_, b)| Mail::parse(b))
            .collect()
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("gazette.db")).unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

/// A delivered message, parsed back by an independent parser.
#[derive(Debug, Clone)]
pub struct Mail {
    pub raw: String,
    pub to_addr: String,
    pub to_name: Option<String>,
    pub to_count: usize,
    pub from: String,
    pub subject: String,
    pub message_id: String,
    pub list_id: Option<String>,
    pub list_unsubscribe: Option<String>,
    pub has_date: bool,
    /// Content types: the root, then each part in order.
    pub types: Vec<String>,
    pub text: String,
    pub html: String,
}

impl Mail {
    pub fn parse(bytes: &[u8]) -> Mail {
        let m = MessageParser::default()
            .parse(bytes)
            .expect("message parses");
        let ctype = |p: &mail_parser::MessagePart<'_>| {
            p.content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
                .unwrap_or_default()
        };
        let to = m.to().expect("To header");
        Mail {
            raw: String::from_utf8_lossy(bytes).into_owned(),
            to_addr: to
                .first()
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_owned(),
            to_name: to.first().and_then(|a| a.name()).map(str::to_owned),
            to_count: to.iter().count(),
            from: m
                .from()
                .and_then(|f| f.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_owned(),
            subject: m.subject().unwrap_or_default().to_owned(),
            message_id: m.message_id().unwrap_or_default().to_owned(),
            list_id: m.header_raw("List-Id").map(|s| s.trim().to_owned()),
            list_unsubscribe: m
                .header_raw("List-Unsubscribe")
                .map(|s| s.trim().to_owned()),
            has_date: m.date().is_some(),
            types: m.parts.iter().map(ctype).collect(),
            text: m
                .body_text(0)
                .map(|c| c.replace("\r\n", "\n"))
                .unwrap_or_default(),
            html: m
                .body_html(0)
                .map(|c| c.replace("\r\n", "\n"))
                .unwrap_or_default(),
        }
    }
}
