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
allow_private = true
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

/// Rows of text values.
type Rows = Vec<Vec<Option<String>>>;

/// Column values of every row a query returns, as text.
fn rows(site: &Site, sql: &str) -> Rows {
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

/// The messages of edition `n` of the `all` digest in the outbox.
fn edition(site: &Site, n: u32) -> Vec<crate::common::Mail> {
    site.outbox_matching(&format!("all-{n:04}-"))
}

fn send(site: &Site) -> String {
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run.stdout
}

#[test]
fn a_scheduled_post_and_a_late_approved_comment_arrive_when_they_go_live() {
    let wp = WordPress::start(Permalinks::Pretty);
    let site = site_for(&wp, "");
    send(&site);
    assert_eq!(edition(&site, 1).len(), 1, "the first edition");
    // Written three days ago, scheduled for tomorrow; wp-cron will publish it late.
    let scheduled = wp.php(
        r#"$id = wp_insert_post(array('post_title' => 'Scheduled Essay', 'post_content' => '<p>Written in advance.</p>',
              'post_status' => 'future', 'post_author' => 1,
              'post_date' => get_date_from_gmt(gmdate('Y-m-d H:i:s', time() + 86400))), true);
           global $wpdb;
           $written = gmdate('Y-m-d H:i:s', time() - 3 * 86400);
           $wpdb->update($wpdb->posts, array('post_modified_gmt' => $written, 'post_modified' => get_date_from_gmt($written)), array('ID' => $id));
           clean_post_cache($id);
           return $id;"#,
    );
    // Posted three days ago, held in moderation.
    let held = wp.php(
        r#"$at = gmdate('Y-m-d H:i:s', time() - 3 * 86400);
           return wp_insert_comment(array('comment_post_ID' => 1, 'comment_author' => 'Late Reader',
              'comment_content' => 'Held for moderation, then approved.', 'comment_approved' => 0,
              'comment_date_gmt' => $at, 'comment_date' => get_date_from_gmt($at)));"#,
    );
    send(&site);
    assert!(edition(&site, 2).is_empty(), "nothing is live yet");

    // wp-cron publishes the post ten minutes after its time; the moderator approves.
    wp.php(&format!(
        r#"global $wpdb;
           $live = gmdate('Y-m-d H:i:s', time() - 600);
           $wpdb->update($wpdb->posts, array('post_date_gmt' => $live, 'post_date' => get_date_from_gmt($live)), array('ID' => {scheduled}));
           clean_post_cache({scheduled});
           wp_publish_post({scheduled});
           wp_set_comment_status({held}, 'approve');
           return get_post_status({scheduled});"#
    ));
    wp.clear_access_log();
    send(&site);
    let mails = edition(&site, 2);
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].html.contains("Scheduled Essay"),
        "{}",
        mails[0].text
    );
    assert!(
        mails[0]
            .text
            .contains("Held for moderation, then approved."),
        "{}",
        mails[0].text
    );
    assert_eq!(mails[0].subject, "1 essays, 1 replies");
    // The date filters name their zone (the site runs in Europe/Berlin).
    let requests: Vec<String> = wp.access_log().into_iter().map(|l| l[0].clone()).collect();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("modified_after=") && r.contains("Z&")),
        "{requests:#?}"
    );
    assert!(
        requests.iter().all(|r| !r.contains("orderby=modified")),
        "{requests:#?}"
    );
}

#[test]
fn items_the_site_retracts_before_the_edition_are_not_mailed() {
    let wp = WordPress::start(Permalinks::Pretty);
    let site = site_for(&wp, "");
    send(&site);
    wp.comment(1, 0, "Keeper", "This one stays.");
    let spam = wp.comment(1, 0, "Spammer", "Buy cheap watches.");
    let pending = wp.comment(1, 0, "Retractor", "Unapproved later.");
    let pulled = wp.post("Pulled Essay", "<p>Regrettable.</p>");
    let kept = wp.post("Kept Essay", "<p>Fine.</p>");
    let run = site.gazette(&["gather"]);
    assert!(
        run.stdout.contains("2 new essays, 3 new replies"),
        "{}",
        run.stdout
    );
    wp.php(&format!(
        "wp_spam_comment({spam}); wp_set_comment_status({pending}, 'hold'); wp_trash_post({pulled}); return true;"
    ));
    let _ = kept;
    send(&site);
    let mails = edition(&site, 2);
    assert_eq!(mails.len(), 1);
    let text = &mails[0].text;
    assert!(
        text.contains("This one stays.") && mails[0].html.contains("Kept Essay"),
        "{text}"
    );
    for gone in [
        "cheap watches",
        "Unapproved later",
        "Pulled Essay",
        "PULLED ESSAY",
        "Regrettable",
    ] {
        assert!(
            !text.contains(gone) && !mails[0].html.contains(gone),
            "{gone}: {text}"
        );
    }
    assert_eq!(mails[0].subject, "1 essays, 1 replies");
    assert_eq!(
        site.count("SELECT COUNT(*) FROM reply WHERE retracted_at IS NOT NULL"),
        2
    );
    assert_eq!(
        site.count("SELECT COUNT(*) FROM essay WHERE retracted_at IS NOT NULL"),
        1
    );
}

/// Essays (title, author) and replies (author, text, has a parent) a site yields.
fn content_of(site: &Site) -> (Rows, Rows) {
    (
        rows(site, "SELECT title, author FROM essay ORDER BY title"),
        rows(
            site,
            "SELECT author, content_html, parent_key IS NOT NULL FROM reply ORDER BY content_html",
        ),
    )
}

fn write_conversation(wp: &WordPress) {
    let p = wp.post("Tides", "<p>The sea returns.</p>");
    let c = wp.comment(p, 0, "Mara", "First, on tides.");
    wp.comment(p, c, "Bo", "Second, answering Mara.");
}

#[test]
fn plain_permalinks_gather_the_same_items_as_pretty_ones() {
    let pretty = WordPress::start(Permalinks::Pretty);
    let plain = WordPress::start(Permalinks::Plain);
    write_conversation(&pretty);
    write_conversation(&plain);
    let (a, b) = (site_for(&pretty, ""), site_for(&plain, ""));
    assert_eq!(gather(&a), gather(&b));
    assert_eq!(content_of(&a), content_of(&b));
    assert_eq!(content_of(&b).1.len(), 3, "{:?}", content_of(&b));
    // Through the REST API, not a fallback.
    let log: Vec<String> = plain
        .access_log()
        .into_iter()
        .map(|l| l[0].clone())
        .collect();
    assert!(
        log.iter()
            .any(|r| r.contains("?rest_route=/wp/v2/comments")),
        "{log:#?}"
    );
    assert_eq!(
        rows(&b, "SELECT route, api_root FROM source_state"),
        vec![vec![
            None,
            Some(format!("{}/index.php?rest_route=/", plain.url))
        ]]
    );
    // With the REST API off as well, the plain-permalink feeds are found.
    plain.option("gazette_rest", "401");
    let p = plain.post("Plain and closed", "<p>Still here.</p>");
    plain.comment(p, 0, "Dee", "Through ?feed=.");
    plain.clear_access_log();
    assert_eq!(gather(&b), "source `wp`: 1 new essay, 1 new reply");
    let log: Vec<String> = plain
        .access_log()
        .into_iter()
        .map(|l| l[0].clone())
        .collect();
    assert!(log.iter().any(|r| r.contains("?feed=atom")), "{log:#?}");
}

#[test]
fn a_bulk_edit_giving_200_posts_one_modification_time_loses_no_new_post() {
    let wp = WordPress::start(Permalinks::Pretty);
    wp.php("for ($i = 0; $i < 200; $i++) { wp_insert_post(array('post_title' => \"Imported $i\", 'post_content' => 'x', 'post_status' => 'publish', 'post_author' => 1)); } return true;");
    let site = site_for(&wp, "");
    assert_eq!(gather(&site), "source `wp`: 201 new essays, 1 new reply");
    wp.php(
        r#"for ($i = 0; $i < 5; $i++) { wp_insert_post(array('post_title' => "Fresh $i", 'post_content' => 'y', 'post_status' => 'publish', 'post_author' => 1)); }
           global $wpdb;
           $now = gmdate('Y-m-d H:i:s');
           $wpdb->query($wpdb->prepare("UPDATE $wpdb->posts SET post_modified_gmt = %s, post_modified = %s", $now, get_date_from_gmt($now)));
           wp_cache_flush();
           return true;"#,
    );
    assert_eq!(gather(&site), "source `wp`: 5 new essays, 0 new replies");
    assert_eq!(
        site.count("SELECT COUNT(*) FROM essay WHERE title LIKE 'Fresh %'"),
        5
    );
}

/// The key of the reply whose text contains `text`.
fn reply_key(site: &Site, text: &str) -> String {
    rows(
        site,
        &format!("SELECT key FROM reply WHERE content_html LIKE '%{text}%'"),
    )[0][0]
        .clone()
        .unwrap()
}

fn parent_of(site: &Site, text: &str) -> Option<String> {
    rows(
        site,
        &format!("SELECT parent_key FROM reply WHERE content_html LIKE '%{text}%'"),
    )[0][0]
        .clone()
}

#[test]
fn with_the_rest_api_off_or_users_hidden_the_feeds_give_the_same_items_and_nothing_old() {
    let wp = WordPress::start(Permalinks::Pretty);
    // A post whose guid is its pretty permalink, as posts made through the REST API have.
    let before = wp.post("Before", "<p>Old essay.</p>");
    wp.php(&format!(
        "global $wpdb; $wpdb->update($wpdb->posts, array('guid' => get_permalink({before})), array('ID' => {before})); clean_post_cache({before}); return true;"
    ));
    let old = wp.comment(before, 0, "Mara", "Old reply.");
    let site = site_for(&wp, "");
    assert_eq!(gather(&site), "source `wp`: 2 new essays, 2 new replies");

    for (variant, title) in [("401", "After a 401"), ("404", "After a 404")] {
        wp.option("gazette_rest", variant);
        let p = wp.post(title, "<p>New essay.</p>");
        let top = wp.comment(p, 0, "Ada", &format!("Top reply under {variant}."));
        wp.comment(p, top, "", &format!("Anonymous child under {variant}."));
        wp.comment(before, old, "Bo", &format!("Late thread under {variant}."));
        assert_eq!(
            gather(&site),
            "source `wp`: 1 new essay, 3 new replies",
            "nothing old again, through the {variant} fallback"
        );
        assert_eq!(
            parent_of(&site, &format!("Anonymous child under {variant}")),
            Some(reply_key(&site, &format!("Top reply under {variant}"))),
            "threads from the Atom feed"
        );
        assert_eq!(
            parent_of(&site, &format!("Late thread under {variant}")),
            Some(reply_key(&site, "Old reply")),
        );
        assert_eq!(
            rows(
                &site,
                &format!("SELECT author FROM reply WHERE content_html LIKE '%Anonymous child under {variant}%'")
            ),
            vec![vec![None]],
            "no name is no name, whichever route"
        );
        assert_eq!(
            rows(
                &site,
                &format!("SELECT author FROM essay WHERE title = '{title}'")
            ),
            vec![vec![Some("admin".into())]]
        );
        let status = site.gazette(&["status"]);
        assert!(
            status
                .stdout
                .contains("on its fallback: feeds, because the REST API is unavailable"),
            "{}",
            status.stdout
        );
    }

    // Back on the REST API, without the users route: names come from the feed.
    wp.option("gazette_rest", "");
    wp.option("gazette_no_users", "1");
    let p = wp.post("No users route", "<p>Hardened.</p>");
    wp.comment(p, 0, "Cy", "Under a hardened site.");
    assert_eq!(gather(&site), "source `wp`: 1 new essay, 1 new reply");
    assert_eq!(
        rows(
            &site,
            "SELECT author FROM essay WHERE title = 'No users route'"
        ),
        vec![vec![Some("admin".into())]]
    );
    assert!(!site.gazette(&["status"]).stdout.contains("fallback"));
    let parents = rows(&site, "SELECT key, parent_key FROM reply ORDER BY key");

    // The same database read as a plain RSS feed source: nothing is new, no parent lost.
    site.edit(
        "config.toml",
        "type = \"wordpress\"",
        &format!(
            "type = \"feed\"\nurl = \"{0}/feed/\"\ncomments_url = \"{0}/comments/feed/\"",
            wp.url
        ),
    );
    site.edit("config.toml", &format!("base_url = \"{}\"", wp.url), "");
    assert_eq!(gather(&site), "source `wp`: 0 new essays, 0 new replies");
    assert_eq!(
        rows(&site, "SELECT key, parent_key FROM reply ORDER BY key"),
        parents
    );
}

#[test]
fn behind_mod_deflate_a_repeat_feed_gather_is_answered_304() {
    let wp = WordPress::start(Permalinks::Pretty);
    let site = Site::new();
    let cfg = site_for(&wp, "").read("config.toml").replace(
        &format!("type = \"wordpress\"\nbase_url = \"{}\"", wp.url),
        &format!(
            "type = \"feed\"\nurl = \"{0}/feed/\"\ncomments_url = \"{0}/comments/feed/\"\ncomment_feeds = false",
            wp.url
        ),
    );
    site.write("config.toml", &cfg);
    // Gazette keeps no validators from a response whose Last-Modified is under two
    // seconds old (a same-second comment would hide behind the 304): let the install's
    // post and comment settle first.
    std::thread::sleep(std::time::Duration::from_secs(3));
    gather(&site);
    let first = wp.access_log();
    let feed = first
        .iter()
        .find(|l| l[0].starts_with("GET /feed/ "))
        .unwrap();
    assert!(
        feed[5].contains("-gzip"),
        "mod_deflate altered the ETag: {feed:?}"
    );
    assert_eq!(feed[6], "gzip");
    wp.clear_access_log();
    gather(&site);
    let repeat = wp.access_log();
    assert_eq!(repeat.len(), 2, "{repeat:?}");
    for line in &repeat {
        assert_eq!(line[1], "304", "{line:?}");
        assert!(
            !line[3].contains("-gzip"),
            "sent the origin's ETag: {line:?}"
        );
    }

    // The WordPress source's feed fallback too.
    wp.option("gazette_rest", "401");
    let fallback = site_for(&wp, "");
    gather(&fallback);
    wp.clear_access_log();
    gather(&fallback);
    let feeds: Vec<_> = wp
        .access_log()
        .into_iter()
        .filter(|l| l[0].contains("/feed/"))
        .collect();
    assert!(!feeds.is_empty());
    assert!(feeds.iter().all(|l| l[1] == "304"), "{feeds:?}");
}

#[test]
fn password_protected_posts_and_their_comments_are_never_mailed() {
    let wp = WordPress::start(Permalinks::Pretty);
    let p = wp.php("return wp_insert_post(array('post_title' => 'Members Only', 'post_content' => '<p>Secret body text.</p>', 'post_status' => 'publish', 'post_password' => 'pw', 'post_author' => 1));").as_u64().unwrap();
    wp.comment(p, 0, "Insider", "Secret reply text.");
    wp.post("Open Essay", "<p>For everyone.</p>");
    let leaked = |site: &Site| {
        site.count("SELECT COUNT(*) FROM essay WHERE content_html LIKE '%Secret%' OR summary LIKE '%Secret%'")
            + site.count("SELECT COUNT(*) FROM reply WHERE content_html LIKE '%Secret%' OR content_html LIKE '%password%'")
    };
    let titles = |site: &Site| rows(site, "SELECT title FROM essay ORDER BY title");

    let site = site_for(&wp, "");
    gather(&site);
    assert_eq!(
        titles(&site),
        vec![
            vec![Some("Hello world!".into())],
            vec![Some("Open Essay".into())]
        ]
    );
    assert_eq!(leaked(&site), 0);

    let opted_in = site_for(&wp, "include_protected = true");
    gather(&opted_in);
    assert_eq!(
        rows(
            &opted_in,
            "SELECT content_html, summary FROM essay WHERE title = 'Members Only'"
        ),
        vec![vec![Some(String::new()), None]],
        "title and link only"
    );
    assert_eq!(leaked(&opted_in), 0);

    wp.option("gazette_rest", "401");
    let by_feed = site_for(&wp, "");
    gather(&by_feed);
    assert_eq!(titles(&by_feed), titles(&site));
    assert_eq!(leaked(&by_feed), 0);
}
