//! Real SMTP servers for the tests: aiosmtpd (from PyPI, installed by ./scripts/test into
//! target/venv) started per test on a free loopback port, and what it captured.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The venv's Python, which has aiosmtpd and dkimpy.
pub fn python() -> PathBuf {
    let p = std::env::var_os("GAZETTE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/python"));
    assert!(
        p.exists(),
        "{} not found: run ./scripts/test, which installs aiosmtpd and dkimpy into target/venv",
        p.display()
    );
    p
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/smtp")
        .join(name)
}

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub tls: bool,
    pub authenticated: bool,
    pub raw: Vec<u8>,
    pub path: PathBuf,
}

/// A running aiosmtpd capture server; stopped when dropped.
pub struct CaptureServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The test CA's certificate, with `--starttls`.
    pub ca: Option<PathBuf>,
}

impl CaptureServer {
    pub fn start() -> CaptureServer {
        Self::start_with(false, None)
    }

    pub fn start_with(starttls: bool, auth: Option<&str>) -> CaptureServer {
        Self::start_full(starttls, auth, &[])
    }

    /// With more of capture_server.py's options (`--port`, `--reject-rcpt`, `--delay`…).
    pub fn start_args(extra: &[&str]) -> CaptureServer {
        Self::start_full(false, None, extra)
    }

    fn start_full(starttls: bool, auth: Option<&str>, extra: &[&str]) -> CaptureServer {
        let dir = tempfile::tempdir().unwrap();
        let ca = starttls.then(|| dir.path().join("ca.pem"));
        let mut cmd = Command::new(python());
        cmd.arg(script("capture_server.py"))
            .arg("--dir")
            .arg(dir.path().join("mail"))
            .args(extra);
        if let Some(ca) = &ca {
            cmd.arg("--starttls").arg(ca);
        }
        if let Some(a) = auth {
            cmd.arg("--auth").arg(a);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("capture server did not start: {line:?}"));
        CaptureServer {
            child,
            port,
            dir,
            ca,
        }
    }

    pub fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("mail"))
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
                })
                .count()
            })
            .unwrap_or(0)
    }

    pub fn messages(&self) -> Vec<Captured> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("mail"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        paths.retain(|p| p.extension().is_some_and(|x| x == "eml"));
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let meta: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(p.with_extension("json")).unwrap(),
                )
                .unwrap();
                Captured {
                    mail_from: meta["mail_from"].as_str().unwrap().to_owned(),
                    rcpt_tos: meta["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_owned())
                        .collect(),
                    tls: meta["tls"].as_bool().unwrap(),
                    authenticated: meta["authenticated"].as_bool().unwrap(),
                    raw: std::fs::read(&p).unwrap(),
                    path: p,
                }
            })
            .collect()
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Verifies a message's DKIM signature with dkimpy against a TXT record file.
pub fn dkim_verify(message: &Path, record: &Path) -> (bool, String) {
    let out = Command::new(python())
        .arg(script("dkim_verify.py"))
        .arg(message)
        .arg(record)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
