//! Hostile-input benchmark (issue 14): a feed whose item is N nested `<div>`s (default
//! 100,000), beside a feed of the same size whose HTML is flat paragraphs. For each, the
//! real `gazette gather` is timed as a user runs it (fresh database, median of 3), and
//! `gazette run` with `[web]` is asked `/healthz` every 5 ms while it gathers the feed
//! every second for 10 s (max and 99th percentile latency). Beside it, in the same run,
//! the reference: Python feedparser 6 (what rss2email uses) parsing and sanitising the
//! same file (installed into target/venv by this bench if missing).
//!
//! `cargo bench --bench hostile`. Settings: `HOSTILE_DEPTH` (100000), `HOSTILE_BINARY`
//! to measure another build of gazette (e.g. the commit before issue 14, whose config has
//! no `allow_private`, so it is left out when this is set).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn feed(base: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\" \
         xmlns:content=\"http://purl.org/rss/1.0/modules/content/\"><channel><title>Hostile</title>\
         <link>{base}</link><item><title>Deep</title><link>{base}/deep/</link>\
         <guid isPermaLink=\"false\">{base}/?p=1</guid><pubDate>Tue, 24 Nov 2026 09:12:40 +0000</pubDate>\
         <content:encoded><![CDATA[{body}]]></content:encoded></item></channel></rss>"
    )
}

fn config(dir: &Path, url: &str, policy_keys: bool) {
    let allow = if policy_keys {
        "allow_private = true\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[site]\nname = \"Bench\"\nbase_url = \"https://bench.example.org\"\n\
             from = \"Bench <digest@bench.example.org>\"\ntemplates = \"{templates}\"\n\n\
             [delivery]\ntransport = \"outbox\"\n\n\
             [web]\nlisten = \"127.0.0.1:0\"\n\n\
             [daemon]\ngather_every = \"1s\"\n\n\
             [http]\nretries = 0\ntimeout = \"600s\"\n\n\
             [[source]]\nname = \"hostile\"\ntype = \"feed\"\n{allow}comment_feeds = false\nurl = \"{url}\"\n\n\
             [[digest]]\nname = \"all\"\nschedule = \"@daily\"\n\n\
             [[subscriber]]\nemail = \"reader@example.org\"\n",
            templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        ),
    )
    .expect("config written");
}

fn gather_time(binary: &Path, url: &str, policy_keys: bool) -> Duration {
    let mut runs = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("temp dir");
        config(dir.path(), url, policy_keys);
        let start = Instant::now();
        let out = Command::new(binary)
            .args(["gather"])
            .current_dir(dir.path())
            .output()
            .expect("gazette runs");
        runs.push(start.elapsed());
        assert!(
            out.status.code().is_some_and(|c| c == 0 || c == 2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    runs.sort();
    runs[1]
}

fn healthz(addr: &str) -> Option<Duration> {
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then(|| start.elapsed())
}

/// Max and 99th-percentile /healthz latency while the daemon gathers `url` every second.
fn endpoint_during_gathers(
    binary: &Path,
    url: &str,
    policy_keys: bool,
) -> (Duration, Duration, usize, usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    config(dir.path(), url, policy_keys);
    let log = dir.path().join("run.log");
    let mut child = Command::new(binary)
        .arg("run")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("gazette run");
    let deadline = Instant::now() + Duration::from_secs(600);
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(a) = text
            .split("listening on http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        {
            break a.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the endpoint did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut lat = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Some(d) = healthz(&addr) {
            lat.push(d);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let gathers = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("Gathered source.")
        .count();
    lat.sort();
    let max = lat.last().copied().unwrap_or_default();
    let p99 = lat.get(lat.len() * 99 / 100).copied().unwrap_or_default();
    (max, p99, lat.len(), gathers)
}

fn feedparser_time(file: &Path) -> Option<Duration> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/python");
    let has = Command::new(&venv)
        .args(["-c", "import feedparser"])
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    if !has {
        let pip = Command::new(&venv)
            .args(["-m", "pip", "install", "-q", "feedparser==6.0.11"])
            .status()
            .ok()?;
        if !pip.success() {
            return None;
        }
    }
    let start = Instant::now();
    let ok = Command::new(&venv)
        .args([
            "-c",
            "import feedparser,sys; d=feedparser.parse(sys.argv[1]); assert len(d.entries) == 1",
        ])
        .arg(file)
        .status()
        .ok()?
        .success();
    ok.then(|| start.elapsed())
}

fn main() {
    let depth: usize = std::env::var("HOSTILE_DEPTH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let other = std::env::var_os("HOSTILE_BINARY").map(PathBuf::from);
    let policy_keys = other.is_none();
    let binary = other.unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gazette")));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(MockServer::start());
    let base = server.uri();
    let nested = format!(
        "{}deep words{}",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    let flat = "<p>flat words</p>".repeat(nested.len() / 17);
    let work = tempfile::tempdir().expect("temp dir");
    println!("binary: {}", binary.display());
    println!("one item of {} bytes of HTML", nested.len());
    for (name, body) in [("nested", &nested), ("flat", &flat)] {
        let xml = feed(&base, body);
        let file = work.path().join(format!("{name}.xml"));
        std::fs::write(&file, &xml).expect("feed file");
        rt.block_on(
            Mock::given(method("GET"))
                .and(path(format!("/{name}/")))
                .respond_with(ResponseTemplate::new(200).set_body_raw(xml, "application/rss+xml"))
                .mount(&server),
        );
        let url = format!("{base}/{name}/");
        let gather = gather_time(&binary, &url, policy_keys);
        let (max, p99, probes, gathers) = endpoint_during_gathers(&binary, &url, policy_keys);
        let reference = feedparser_time(&file).map_or_else(
            || "unavailable".to_owned(),
            |d| format!("{:.2} s", d.as_secs_f64()),
        );
        println!(
            "{name:>6} (depth {}): gazette gather {:.2} s; /healthz during {gathers} gathers: max {:.1} ms, p99 {:.1} ms over {probes} probes; feedparser 6 parse {reference}",
            if name == "nested" { depth } else { 1 },
            gather.as_secs_f64(),
            max.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
        );
    }
}
