//! kill -9 soak (issue 13): the real `gazette` binary sends one edition to many
//! subscribers through aiosmtpd on loopback and is killed with SIGKILL over and over
//! (each time after a random 10–60 ms of sending), `send --resume` picking up each time,
//! until the edition is done. Then every recipient's copies are counted: nobody may be
//! lost, each duplicate must carry its original's Message-ID, and the duplicates per kill
//! (messages the server accepted whose outcome the dead process had not committed) are
//! reported, with the bound (`concurrency`).
//!
//! `cargo bench --bench kill9` (needs target/venv from `./scripts/test`). Settings by
//! environment: `SOAK_SUBSCRIBERS` (default 10000), `SOAK_KILLS` (200), `SOAK_CONCURRENCY`
//! (16), and `SOAK_BINARY` to soak another build of gazette (e.g. an older commit's) with
//! the same harness, for a before/after figure.

#[path = "../tests/integration/smtp_support.rs"]
#[allow(dead_code, unreachable_pub)]
mod smtp_support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use smtp_support::CaptureServer;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn message_id(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("Message-ID:")
                .or_else(|| l.strip_prefix("Message-Id:"))
        })
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

fn main() {
    let subscribers = env_num("SOAK_SUBSCRIBERS", 10_000);
    let kills_wanted = env_num("SOAK_KILLS", 200);
    let concurrency = env_num("SOAK_CONCURRENCY", 16);
    let binary = std::env::var_os("SOAK_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gazette")));

    let server = CaptureServer::start();
    let dir = tempfile::tempdir().expect("scratch folder");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = format!(
        "[site]\nname = \"Soak\"\nbase_url = \"https://soak.example.org\"\nfrom = \"Soak <d@soak.example.org>\"\ntemplates = \"{}/templates\"\n\n\
         [delivery]\ntransport = \"smtp\"\nconcurrency = {concurrency}\nretry_base = \"100ms\"\n\n\
         [delivery.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"10s\"\n\n\
         [[source]]\nname = \"site\"\ntype = \"folder\"\npath = \"{}/examples/site/essays\"\n\n\
         [[digest]]\nname = \"essays\"\nschedule = \"@daily\"\ninclude = \"essays\"\nfirst_edition_lookback = \"100000d\"\n\n",
        root.display(),
        server.port,
        root.display()
    );
    let mut csv = String::from("email,name,digests\n");
    for i in 0..subscribers {
        csv.push_str(&format!("r{i:05}@example.org,Reader {i},essays\n"));
    }
    cfg.push('\n');
    std::fs::write(dir.path().join("config.toml"), cfg).expect("config");
    std::fs::write(dir.path().join("readers.csv"), csv).expect("csv");
    let gazette = |args: &[&str]| {
        let mut c = Command::new(&binary);
        c.args(args)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let imported = Command::new(&binary)
        .args(["subscribers", "import", "readers.csv"])
        .current_dir(dir.path())
        .output()
        .expect("import runs");
    assert!(
        imported.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&imported.stderr)
    );

    println!(
        "kill -9 soak: {} ({subscribers} subscribers, concurrency {concurrency}, {kills_wanted} kills)",
        binary.display()
    );
    let started = Instant::now();
    let mut kills = 0;
    let mut first = true;
    loop {
        let args: &[&str] = if first {
            &["send", "--digest", "essays"]
        } else {
            &["send", "--resume"]
        };
        first = false;
        let mut child = gazette(args).spawn().expect("gazette starts");
        let before = server.count();
        // Wait until it sends, then let it run a random while before the kill.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut finished = false;
        while server.count() == before {
            if child.try_wait().ok().flatten().is_some() {
                finished = true;
                break;
            }
            assert!(Instant::now() < deadline, "no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        if !finished && kills < kills_wanted {
            std::thread::sleep(Duration::from_millis(10 + fastrand::u64(..50)));
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
                kills += 1;
                // Let what the dead process handed over land at the server.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let status = child.wait().expect("gazette finishes");
        if status.success() && server.count() >= subscribers {
            break;
        }
        assert!(
            Instant::now() < started + Duration::from_secs(3600),
            "the soak did not finish"
        );
    }
    std::thread::sleep(Duration::from_millis(300));

    let mut copies: HashMap<String, Vec<String>> = HashMap::new();
    for m in server.messages() {
        let to = m.rcpt_tos.first().cloned().unwrap_or_default();
        copies.entry(to).or_default().push(message_id(&m.raw));
    }
    let lost = subscribers - copies.len().min(subscribers);
    let duplicates: usize = copies.values().map(|v| v.len() - 1).sum();
    let mismatched = copies
        .values()
        .filter(|ids| ids.iter().any(|i| i != &ids[0]))
        .count();
    let per_kill = duplicates as f64 / kills.max(1) as f64;
    println!(
        "{kills} kills: {} recipients reached, {lost} lost, {duplicates} duplicates ({per_kill:.2} per kill, bound {concurrency}), {mismatched} duplicates with another Message-ID, {:.0} s",
        copies.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lost, 0, "recipients lost");
    assert_eq!(mismatched, 0, "a duplicate with another Message-ID");
}
