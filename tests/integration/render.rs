//! Rendering the shipped templates through the library, with snapshots of both parts, and
//! the template sandbox rules.

use gazette::config::{self, Config};
use gazette::edition::{DigestView, EssayView, ReplyView, ThreadView};
use gazette::render::{
    DigestInfo, EditionInfo, MessageContext, Rendered, Renderer, SiteInfo, SubscriberInfo,
};

use crate::common::Site;

fn view() -> DigestView {
    let essay = EssayView {
        id: 1,
        title: "Fish & Chips <and> Other \"Quotes\"".into(),
        author: Some("Maren Holt".into()),
        url: Some("https://longmargin.example.org/essays/fish/".into()),
        // Late on the 23rd in London is already the 24th in Kolkata.
        published_at: "2026-11-23T23:30:00.000000Z".into(),
        summary: None,
        content_html: "<p>One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four twenty-five twenty-six twenty-seven twenty-eight twenty-nine thirty thirty-one thirty-two thirty-three thirty-four thirty-five thirty-six thirty-seven thirty-eight thirty-nine forty forty-one forty-two forty-three forty-four forty-five forty-six forty-seven forty-eight forty-nine fifty fifty-one fifty-two fifty-three fifty-four fifty-five fifty-six fifty-seven fifty-eight fifty-nine sixty sixty-one sixty-two.</p>".into(),
        reply_count: 3,
        follow_url: None,
    };
    let reply = |author: Option<&str>, depth: usize, text: &str| ReplyView {
        author: author.map(str::to_owned),
        url: Some(format!(
            "https://longmargin.example.org/essays/fish/#reply-{depth}"
        )),
        published_at: "2026-11-24T10:00:00.000000Z".into(),
        content_html: format!("<p>{text}</p>"),
        depth,
        answers_earlier: false,
    };
    DigestView {
        essays: vec![essay.clone()],
        threads: vec![ThreadView {
            essay,
            replies: vec![
                reply(
                    Some("Tomas Reid"),
                    0,
                    "I disagree with the second paragraph.",
                ),
                reply(Some("Maren Holt"), 1, "Which part of it?"),
                reply(None, 2, "The part about vinegar, surely."),
            ],
            unfollow_url: None,
        }],
        reply_count: 3,
        more_essays: 0,
    }
}

/// The site, digest and edition (No. 7) as templates see them.
fn infos(cfg: &Config, d: &config::Digest) -> (SiteInfo, DigestInfo, EditionInfo) {
    (
        SiteInfo {
            name: cfg.site.name.clone(),
            base_url: cfg.site.base_url.clone(),
        },
        DigestInfo {
            name: d.name.clone(),
            title: d.title.clone(),
        },
        EditionInfo {
            number: 7,
            date: "2026-11-30T08:00:00.000000Z".into(),
        },
    )
}

fn render(cfg: &Config, digest: usize, name: Option<&str>, tz: &str) -> Rendered {
    let mut v = view();
    // Each digest sees only what it includes, as `edition::select` would give it.
    if !cfg.digests[digest].include.essays {
        v.essays.clear();
    }
    if !cfg.digests[digest].include.replies {
        v.threads.clear();
        v.reply_count = 0;
    }
    let renderer = Renderer::load(cfg).unwrap();
    let d = &cfg.digests[digest];
    let (site, info, edition) = infos(cfg, d);
    let ctx = MessageContext {
        site: &site,
        digest: &info,
        edition: &edition,
        subscriber: SubscriberInfo {
            name: name.map(str::to_owned),
            email: "reader@example.org".into(),
            timezone: tz.into(),
        },
        view: &v,
        unsubscribe_url: gazette::deliver::unsubscribe_mailto(&cfg.site.from.email, &d.name, None),
        preferences_url: None,
        archive_url: None,
        public: false,
    };
    renderer.render(d, &ctx).unwrap()
}

#[test]
fn renders_the_essays_digest() {
    let site = Site::new();
    let cfg = config::load(&site.path("config.toml")).unwrap();
    let out = render(&cfg, 0, Some("Ada Lovelace"), "Europe/London");
    assert_eq!(out.subject, "The Long Margin: 1 new essay");
    insta::assert_snapshot!("essays_text", out.text);
    insta::assert_snapshot!("essays_html", out.html);
}

#[test]
fn renders_the_replies_digest_with_threads() {
    let site = Site::new();
    let cfg = config::load(&site.path("config.toml")).unwrap();
    let out = render(&cfg, 1, None, "Asia/Kolkata");
    assert_eq!(out.subject, "The Long Margin: 3 new replies");
    insta::assert_snapshot!("replies_text", out.text);
    insta::assert_snapshot!("replies_html", out.html);
}

#[test]
fn dates_follow_the_subscribers_time_zone() {
    let site = Site::new();
    let cfg = config::load(&site.path("config.toml")).unwrap();
    let london = render(&cfg, 0, None, "Europe/London");
    let kolkata = render(&cfg, 0, None, "Asia/Kolkata");
    assert!(
        london.text.contains("Maren Holt, 23 November 2026"),
        "{}",
        london.text
    );
    assert!(
        kolkata.text.contains("Maren Holt, 24 November 2026"),
        "{}",
        kolkata.text
    );
}

#[test]
fn html_escapes_titles_and_text_keeps_them_plain() {
    let site = Site::new();
    let cfg = config::load(&site.path("config.toml")).unwrap();
    let out = render(&cfg, 0, None, "UTC");
    assert!(
        out.html
            .contains("Fish &amp; Chips &lt;and&gt; Other \"Quotes\""),
        "{}",
        out.html
    );
    assert!(!out.html.contains("<and>"), "{}", out.html);
    assert!(
        out.text.contains("FISH & CHIPS <AND> OTHER \"QUOTES\""),
        "{}",
        out.text
    );
    assert!(out.text.contains("sixty…"), "60-word excerpt: {}", out.text);
}

#[test]
fn templates_cannot_read_the_environment() {
    let site = Site::new();
    site.edit(
        "templates/default/digest.txt",
        "{% block content %}",
        "{% block content %}{{ get_env(name=\"HOME\") }}",
    );
    let run = site.gazette(&["check"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("get_env is disabled"), "{}", run.stderr);
    let run = site.gazette(&["send"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("get_env is disabled"), "{}", run.stderr);
    assert!(site.emls_in("outbox").is_empty());
}

#[test]
fn the_inliner_never_loads_stylesheets() {
    let site = Site::new();
    site.edit(
        "templates/default/base.html",
        "<style>",
        "<link rel=\"stylesheet\" href=\"https://cdn.example.com/evil.css\"><link rel=\"stylesheet\" href=\"/etc/passwd\"><style>",
    );
    let cfg = config::load(&site.path("config.toml")).unwrap();
    let out = render(&cfg, 0, None, "UTC");
    assert!(!out.html.contains("<link"), "{}", out.html);
    assert!(!out.html.contains("evil.css"));
    assert!(!out.html.contains("root:"), "no local file was read");
}

/// Copies that share CSS inlining (`render_copy` with one memo, as an edition's copies
/// do) are byte for byte what inlining each on its own gives, whatever the recipient's
/// name, address or links look like: plain, markup-like, escaped, non-ASCII, empty.
#[test]
fn shared_css_inlining_gives_the_same_bytes_as_inlining_each_copy() {
    let site = Site::new();
    let cfg = config::load(&site.path("config.toml")).unwrap();
    let renderer = Renderer::load(&cfg).unwrap();
    let memo = gazette::render::InlineMemo::default();
    // Ordinary readers, then awkward ones.
    let ordinary: Vec<String> = (0..30).map(|i| format!("Reader {i}")).collect();
    let mut names: Vec<Option<&str>> = ordinary.iter().map(|n| Some(n.as_str())).collect();
    names.extend([
        Some("Ada Lovelace"),
        Some("Reader 1"),
        Some("Reader 10"),
        Some("wrap"),
        Some("div"),
        Some("a"),
        Some("p"),
        Some("style"),
        Some("href"),
        Some("O'Brien & Sons"),
        Some("<script>alert(1)</script>"),
        Some("Zoë \"Z\" Ünal"),
        Some("The Long Margin"),
        Some("New essays"),
        Some("Maren Holt"),
        Some(""),
        None,
    ]);
    for (digest, d) in cfg.digests.iter().enumerate() {
        let mut v = view();
        if !d.include.essays {
            v.essays.clear();
        }
        if !d.include.replies {
            v.threads.clear();
            v.reply_count = 0;
        }
        let (site_info, info, edition) = infos(&cfg, d);
        for (i, name) in names.iter().enumerate() {
            for tz in ["Europe/London", "Asia/Kolkata"] {
                let email = match i % 3 {
                    0 => format!("reader{i}@example.org"),
                    1 => format!("Reader.{i}+tag@Example.org"),
                    _ => "longmargin@example.org".to_owned(),
                };
                let unsubscribe = format!("https://longmargin.example.org/unsubscribe/Tok-{i}_x");
                let preferences = format!("https://longmargin.example.org/preferences/Tok-{i}_y");
                let ctx = MessageContext {
                    site: &site_info,
                    digest: &info,
                    edition: &edition,
                    subscriber: SubscriberInfo {
                        name: name.map(str::to_owned),
                        email: email.clone(),
                        timezone: tz.into(),
                    },
                    view: &v,
                    unsubscribe_url: unsubscribe.clone(),
                    preferences_url: Some(preferences.clone()),
                    archive_url: None,
                    public: false,
                };
                let alone = renderer.render(d, &ctx).unwrap();
                let mut values = vec![email.as_str(), unsubscribe.as_str(), preferences.as_str()];
                values.extend(name.filter(|n| !n.is_empty()));
                let context = Renderer::context(d, &ctx).unwrap();
                let shared = renderer.render_copy(d, &context, &values, &memo).unwrap();
                assert_eq!(
                    shared.html, alone.html,
                    "digest {digest}, name {name:?}, {email}, {tz}"
                );
                assert_eq!(shared.text, alone.text);
                assert_eq!(shared.subject, alone.subject);
            }
        }
    }
    // Most copies did share (the test would prove nothing otherwise); the awkward ones
    // were inlined on their own.
    let copies = cfg.digests.len() * names.len() * 2;
    assert!(
        memo.reused() * 2 > copies,
        "{} of {copies} copies reused an inlining",
        memo.reused()
    );
    assert!(memo.reused() < copies);
}

/// WCAG 2 contrast ratio of two `#rrggbb` (or `#rgb`) colours.
fn contrast(a: &str, b: &str) -> f64 {
    let luminance = |c: &str| {
        let hex = c.trim_start_matches('#');
        let hex: String = if hex.len() == 3 {
            hex.chars().flat_map(|ch| [ch, ch]).collect()
        } else {
            hex.to_owned()
        };
        let channel = |i: usize| {
            let v = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if v <= 0.03928 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
    };
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// The value of `prop` in the inline style of the first element with `class="name"`.
fn inline_style(html: &str, class: &str, prop: &str) -> String {
    let at = html.find(&format!("class=\"{class}\" style=\"")).unwrap();
    let style = &html[at..];
    let style = &style[style.find("style=\"").unwrap() + 7..];
    let style = &style[..style.find('"').unwrap()];
    style
        .split(';')
        .find_map(|d| d.trim().strip_prefix(&format!("{prop}:")))
        .unwrap_or_else(|| panic!("no {prop} in {style}"))
        .trim()
        .to_owned()
}

#[test]
fn the_footer_meets_wcag_aa_contrast_and_the_preheader_previews_the_edition() {
    let site = Site::new();
    let cfg = config::load(&site.path("config.toml")).unwrap();
    let out = render(&cfg, 0, None, "Europe/London");
    let background = inline_style(&out.html, "wrap", "background");
    for class in ["footer", "meta"] {
        let fg = inline_style(&out.html, class, "color");
        let ratio = contrast(&fg, &background);
        assert!(
            ratio >= 4.5,
            "{class} text {fg} on {background}: {ratio:.2}:1"
        );
    }
    assert!(contrast("#777777", "#ffffff") < 4.5, "the check can fail");
    // The preview line: the first thing in the body, hidden, naming the essays.
    let body = &out.html[out.html.find("<body").unwrap()..];
    let first = &body[body.find('>').unwrap() + 1..].trim_start();
    assert!(
        first.starts_with("<div style=\"display:none;"),
        "{first:.200}"
    );
    let preheader = &first[..first.find("</div>").unwrap()];
    assert!(preheader.contains("Fish &amp; Chips"), "{preheader}");
    assert!(!out.text.contains("display:none"));
    // A reader without a name is greeted all the same.
    assert!(out.html.contains("<p>Hello,</p>"));
    assert!(out.text.contains("Hello,"));
}
