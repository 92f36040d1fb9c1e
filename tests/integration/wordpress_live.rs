//! The `wordpress` source against a real WordPress (see wp_support.rs): the workflows a
//! publication really has — scheduled posts, late approvals, retractions, plain
//! permalinks, hardened sites, mod_deflate — checked through the real binary.

use crate::common::Site;
use crate::wp_support::{Permalinks, WordPress};

/// A copy of the shipped publication reading `wp` (plus any extra source options).
fn site_for(wp: &WordPress, extra: &str) -> Site {
    let site = Site::new();
    site.write(
        "config.toml",
        &format!(
            r#"[site]
name = "WP Review"
base_url = "https://review.example.org"
from = "WP Review <digest@review.example.org>"

[http]
retries = 1
timeout = "20s"

[[source]]
name = "wp"
type = "wordpress"
base_url = "{url}"
{extra}

[[digest]]
name = "all"
schedule = "@daily"
subject = "{{{{ essays | length }}}} essays, {{{{ reply_count }}}} replies"
first_edition_lookback = "30d"

[[subscriber]]
email = "reader@example.org"
name = "Reader"
"#,
            url = wp.url
        ),
    );
    site
}

/// Column values of every row a query returns, as text.
fn rows(site: &Site, sql: &str) -> Vec<Vec<Option<String>>> {
    let db = site.db();
    let mut stmt = db.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i).map(|v| match v {
                    rusqlite::types::Value::Null => None,
                    rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                    rusqlite::types::Value::Text(t) => Some(t),
                    other => Some(format!("{other:?}")),
                })
            })
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn gather(site: &Site) -> String {
    let run = site.gazette(&["gather"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run.stdout.trim().to_owned()
}

#[test]
fn a_real_site_gathers_posts_comments_threads_and_authors() {
    let wp = WordPress::start(Permalinks::Pretty);
    let a = wp.post("Tides", "<p>The sea <em>returns</em>.</p>");
    let c1 = wp.comment(a, 0, "Mara", "First!");
    wp.comment(a, c1, "", "A reply to Mara, with no name.");
    let site = site_for(&wp, "");
    let out = gather(&site);
    assert!(out.contains("source `wp`"), "{out}");
    let essays = rows(&site, "SELECT title, author FROM essay ORDER BY title");
    assert_eq!(
        essays,
        vec![
            vec![Some("Hello world!".into()), Some("admin".into())],
            vec![Some("Tides".into()), Some("admin".into())],
        ]
    );
    let replies = rows(&site, "SELECT author, parent_key IS NOT NULL FROM reply WHERE content_html LIKE '%Mara%' OR content_html LIKE '%First%' ORDER BY id");
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(gather(&site), "source `wp`: 0 new essays, 0 new replies");
}
