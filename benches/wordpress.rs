//! WordPress gathering benchmark (issue 11): a real WordPress (Debian's package, started by
//! the same harness as the tests) with 200 posts and 500 comments; the real `gazette`
//! binary gathers it once fresh and then again with nothing changed, and once more after
//! one new post and five new comments. Requests and bytes are read from Apache's access
//! log (bytes are the compressed body sizes Apache sent); time is the whole process.
//! Beside it, the reference: reading every page of the same REST lists in full, as a
//! poller without windows or `_fields` does on each round.
//! Run with `cargo bench --bench wordpress` (needs the packages `./scripts/test` installs).

#[path = "../tests/integration/wp_support.rs"]
#[allow(dead_code, unreachable_pub)]
mod wp_support;

use std::process::Command;
use std::time::Instant;

use wp_support::{Permalinks, WordPress};

fn gazette(dir: &std::path::Path) -> f64 {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("gather")
        .current_dir(dir)
        .output()
        .expect("gazette runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed().as_secs_f64()
}

fn traffic(wp: &WordPress) -> (usize, u64) {
    let log = wp.access_log();
    let bytes = log
        .iter()
        .filter_map(|l| l.get(2)?.parse::<u64>().ok())
        .sum();
    (log.len(), bytes)
}

fn row(what: &str, wp: &WordPress, secs: f64) {
    let (requests, bytes) = traffic(wp);
    println!(
        "{what:<44} {requests:>4} requests {:>9.1} KB {secs:>7.2} s",
        bytes as f64 / 1024.0
    );
    wp.clear_access_log();
}

fn main() {
    let wp = WordPress::start(Permalinks::Pretty);
    wp.php(
        r#"$body = str_repeat('<p>The harbour wall was built in 1887 and rebuilt, stone by stone, after every winter that broke it.</p>', 20);
           $posts = array();
           for ($i = 0; $i < 200; $i++) {
             $posts[] = wp_insert_post(array('post_title' => "Essay $i", 'post_content' => $body, 'post_status' => 'publish', 'post_author' => 1));
           }
           for ($i = 0; $i < 500; $i++) {
             wp_insert_comment(array('comment_post_ID' => $posts[$i % 200], 'comment_author' => "Reader $i",
               'comment_content' => str_repeat('A considered reply. ', 10), 'comment_approved' => 1));
           }
           return true;"#,
    );
    let dir = tempfile::tempdir().expect("scratch folder");
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[site]\nname = \"Bench\"\nbase_url = \"https://bench.example.org\"\nfrom = \"Bench <d@bench.example.org>\"\ntemplates = \"{}/templates\"\n\n\
             [[source]]\nname = \"wp\"\ntype = \"wordpress\"\nallow_private = true\nbase_url = \"{}\"\n\n\
             [[digest]]\nname = \"all\"\nschedule = \"@daily\"\n\n[[subscriber]]\nemail = \"r@example.org\"\n",
            env!("CARGO_MANIFEST_DIR"),
            wp.url
        ),
    )
    .expect("config written");
    wp.clear_access_log();
    println!("WordPress 6.1 (Debian), 200 posts, 500 comments, Apache with mod_deflate, loopback");
    row("gazette: first gather", &wp, gazette(dir.path()));
    row(
        "gazette: repeat gather, nothing new",
        &wp,
        gazette(dir.path()),
    );
    wp.php("$p = wp_insert_post(array('post_title' => 'One more', 'post_content' => 'x', 'post_status' => 'publish', 'post_author' => 1)); for ($i = 0; $i < 5; $i++) { wp_insert_comment(array('comment_post_ID' => $p, 'comment_author' => 'New', 'comment_content' => 'New reply.', 'comment_approved' => 1)); } return true;");
    wp.clear_access_log();
    row(
        "gazette: repeat gather, 1 post + 5 comments",
        &wp,
        gazette(dir.path()),
    );

    // The reference: every page of both lists in full (curl, gzip accepted).
    let start = Instant::now();
    for route in ["posts", "comments"] {
        for page in 1..=5 {
            let url = format!(
                "{}/wp-json/wp/v2/{route}?per_page=100&_embed=author&page={page}",
                wp.url
            );
            let out = Command::new("curl")
                .args([
                    "-s",
                    "--compressed",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &url,
                ])
                .output()
                .expect("curl runs");
            if String::from_utf8_lossy(&out.stdout) != "200" {
                break;
            }
        }
    }
    row(
        "reference: full REST lists with curl",
        &wp,
        start.elapsed().as_secs_f64(),
    );
}
