//! A real PostgreSQL for the tests: Debian's server binaries, `initdb` into a scratch
//! folder (as `nobody` when the tests run as root, since PostgreSQL refuses root), on a
//! loopback port, password (SCRAM) authentication. Each test gets its own server, stopped
//! when the guard drops.

use crate::common::free_port;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The password every test server's `gazette` user has; configs read it from the
/// environment variable [`PASSWORD_ENV`].
pub const PASSWORD: &str = "test-only-Gazette-pw";
/// The environment variable configs name in `password_env`.
pub const PASSWORD_ENV: &str = "GAZETTE_TEST_PG_PASSWORD";

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server packages are not installed (scripts/test installs them)")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the unprivileged user when we are root.
fn as_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A running PostgreSQL server.
pub struct Pg {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Pg {
    /// Initialises and starts a server, and creates the database `gazette`.
    pub fn start() -> Pg {
        Pg::start_db(&["gazette"])
    }

    /// The same, with these databases.
    pub fn start_db(databases: &[&str]) -> Pg {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("gazette-pg")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if is_root() {
            let s = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(s.success());
        }
        let out = as_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "gazette",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-N",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = dir.path().join("pg.log");
        let out = as_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=200",
                dir.path().display()
            ))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let pg = Pg { port, dir, bin };
        for db in databases {
            let out = Command::new(pg.bin.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "gazette",
                    db,
                ])
                .env("PGPASSWORD", PASSWORD)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "createdb: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        pg
    }

    /// The URL configs use (no password: that is in [`PASSWORD_ENV`]).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://gazette@127.0.0.1:{}/{db}", self.port)
    }

    /// The `[state]` table for database `db`.
    pub fn state_toml(&self, db: &str) -> String {
        format!(
            "[state]\nurl = \"{}\"\npassword_env = \"{PASSWORD_ENV}\"\ntls = \"off\"\n",
            self.url(db)
        )
    }

    /// Runs one SQL query with psql and returns its unaligned output.
    pub fn sql(&self, db: &str, query: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "gazette",
                "-d",
                db,
            ])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {query}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A number a query returns.
    pub fn count(&self, db: &str, query: &str) -> i64 {
        self.sql(db, query).parse().unwrap()
    }

    /// The store config the library takes.
    pub fn state(&self, db: &str) -> gazette::config::State {
        gazette::config::State::Postgres(gazette::config::PgState {
            url: self.url(db),
            password: Some(gazette::config::Secret::new(PASSWORD.into())),
            tls: gazette::config::PgTls::Off,
            ca_pem: None,
        })
    }

    /// Waits until `ready` holds, failing after `limit`.
    pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
        let end = Instant::now() + limit;
        while !ready() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = as_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
