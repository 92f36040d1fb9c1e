//! Normalisation and sanitising shared by every source: messy reader text in, tidy and
//! safe HTML out. Plain functions, no I/O.
//!
//! Real comment text arrives with doubled spaces, hard indentation from scrapers, runs of
//! blank lines, and typewriter quotes (a backtick opening what a curly quote closes). We
//! tidy what can be tidied without guessing at meaning, then render Markdown and pass
//! *everything* through ammonia, so no source can smuggle script into a digest.

use pulldown_cmark::{html, Options, Parser};

/// Largest HTML we hand to the HTML-to-text converter; longer input is cut first, because
/// such converters can take very long on huge or deeply nested documents.
const MAX_TEXT_INPUT: usize = 256 * 1024;

/// Tidies reader-typed text: removes the indentation all lines share, collapses runs of
/// spaces inside lines, turns runs of blank lines into one paragraph break, pairs stray
/// quote marks, and drops spaces before punctuation. Fenced code blocks are left alone.
pub fn tidy_text(input: &str) -> String {
    let input = input.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = input.lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);

    let mut out: Vec<String> = Vec::new();
    let mut in_fence = false;
    let mut blank_run = 0;
    for line in lines {
        let body = line.get(indent..).unwrap_or(line.trim_start());
        let trimmed = body.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            out.push(body.trim_end().to_owned());
            continue;
        }
        if in_fence {
            out.push(body.trim_end().to_owned());
            continue;
        }
        if trimmed.is_empty() {
            blank_run += 1;
            if blank_run == 1 && !out.is_empty() {
                out.push(String::new());
            }
            continue;
        }
        blank_run = 0;
        let lead = &body[..body.len() - body.trim_start().len()];
        out.push(format!("{lead}{}", collapse_spaces(trimmed)));
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    let text = out.join("\n");
    text.split("\n\n")
        .map(|p| {
            if p.trim_start().starts_with("```") || p.trim_start().starts_with("~~~") {
                p.to_owned()
            } else {
                fix_punctuation_spacing(&pair_quotes(p))
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = false;
    for c in s.chars() {
        // Non-breaking and other odd spaces are as messy as doubled ones.
        let is_space = c == ' ' || c == '\t' || c == '\u{a0}' || c == '\u{2002}';
        if is_space {
            if !last_space {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
        last_space = is_space;
    }
    out
}

/// Pairs quote marks within one paragraph: a backtick opening a quote that a curly or
/// straight single quote closes becomes ‘, and a “ that a ’ closes gets its ” back.
fn pair_quotes(p: &str) -> String {
    let mut chars: Vec<char> = p.chars().collect();
    let n = chars.len();
    for i in 0..n {
        if chars[i] != '`' {
            continue;
        }
        // Between two letters a backtick can only be a mistyped apostrophe (isn`t).
        if i > 0
            && chars[i - 1].is_alphabetic()
            && chars.get(i + 1).is_some_and(|c| c.is_alphabetic())
        {
            chars[i] = '’';
            continue;
        }
        let at_word_start =
            i == 0 || chars[i - 1].is_whitespace() || "([{“\"".contains(chars[i - 1]);
        let next_is_word = chars.get(i + 1).is_some_and(|c| c.is_alphanumeric());
        if !(at_word_start && next_is_word) {
            continue;
        }
        // A code span closes with another backtick; a quotation closes with ’ or '.
        let closer = chars[i + 1..]
            .iter()
            .position(|c| *c == '`' || *c == '’' || *c == '\'')
            .map(|j| chars[i + 1 + j]);
        if matches!(closer, Some('’') | Some('\'')) {
            chars[i] = '‘';
        }
    }
    // “ … ’ : the closer is the last ’ that ends a word after the unmatched opener.
    if let Some(open) = chars.iter().rposition(|c| *c == '“') {
        if !chars[open..].contains(&'”') {
            let close = (open + 1..n).rev().find(|&j| {
                chars[j] == '’' && chars.get(j + 1).is_none_or(|c| !c.is_alphanumeric())
            });
            if let Some(j) = close {
                chars[j] = '”';
            }
        }
    }
    chars.into_iter().collect()
}

/// Removes the space typed before , ; : ! ? and a sentence-ending full stop.
fn fix_punctuation_spacing(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len());
    for (i, c) in chars.iter().enumerate() {
        let after_word =
            i > 0 && (chars[i - 1].is_alphanumeric() || "’”)\"'".contains(chars[i - 1]));
        if *c == ' ' && after_word {
            if let Some(next) = chars.get(i + 1) {
                let ends_sentence = |k: usize| chars.get(k).is_none_or(|c| c.is_whitespace());
                if ",;:!?".contains(*next) && ends_sentence(i + 2)
                    || *next == '.' && ends_sentence(i + 2)
                {
                    continue;
                }
            }
        }
        out.push(*c);
    }
    out
}

/// Tidies Markdown text and renders it to sanitised HTML, resolving relative links
/// against `base_url` (mail clients cannot resolve them).
pub fn markdown_to_html(markdown: &str, base_url: Option<&str>) -> String {
    let tidy = tidy_text(markdown);
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_SMART_PUNCTUATION);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let parser = Parser::new_ext(&tidy, opts);
    let mut out = String::new();
    html::push_html(&mut out, parser);
    sanitize_html(&out, base_url)
}

/// Sanitises HTML from any source: no script, style, iframe, event handlers or
/// `javascript:` URLs survive; links open safely and become absolute.
pub fn sanitize_html(input: &str, base_url: Option<&str>) -> String {
    // Size and depth first: the parser's cost grows with the square of the nesting.
    let input = super::bound::bound_html(input);
    let mut builder = ammonia::Builder::default();
    builder.link_rel(Some("noopener noreferrer"));
    // Only web and mail links reach a reader (ammonia's default list also has ftp:,
    // tel:, data-less others); everything else is dropped from href and src.
    builder.url_schemes(["http", "https", "mailto"].into_iter().collect());
    let base =
        base_url.and_then(|b| url::Url::parse(&format!("{}/", b.trim_end_matches('/'))).ok());
    match base {
        Some(b) => builder.url_relative(ammonia::UrlRelative::RewriteWithBase(b)),
        None => builder.url_relative(ammonia::UrlRelative::Deny),
    };
    tidy_html(builder.clean(&input).to_string().trim())
}

/// Collapses runs of spaces in the text of HTML (outside tags and `<pre>`), the same
/// tidying typed text gets; browsers would collapse them, text conversion might not.
pub fn tidy_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    let mut in_pre = 0usize;
    let mut last_space = false;
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let lower: String = rest
                .chars()
                .take(5)
                .collect::<String>()
                .to_ascii_lowercase();
            if lower.starts_with("<pre") {
                in_pre += 1;
            } else if lower.starts_with("</pre") {
                in_pre = in_pre.saturating_sub(1);
            }
            in_tag = true;
        }
        let space = !in_tag && in_pre == 0 && (c == ' ' || c == '\t' || c == '\u{a0}');
        if !(space && last_space) {
            out.push(if space { ' ' } else { c });
        }
        last_space = space;
        if c == '>' {
            in_tag = false;
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Plain text from a name or title that a web source may have written as HTML. Inline
/// markup keeps its words; a title that mentions tags as text ("Why <b> is not
/// <strong>") is read as text.
pub fn html_line(s: &str) -> String {
    if super::prose::mentions_tags(s) {
        let escaped = s.replace('<', "&lt;").replace('>', "&gt;");
        crate::config::plain_line(&html_to_line(&escaped))
    } else {
        crate::config::plain_line(&html_to_line(s))
    }
}

/// The text of some HTML as prose for one line (an excerpt or summary): link text
/// without addresses, no emphasis markers; not yet joined into one line.
pub fn html_to_line(input: &str) -> String {
    memo(3, &[input], 0, || {
        let cut = super::bound::bound_html(truncate_at_char(input, MAX_TEXT_INPUT));
        super::prose::convert(&cut, super::prose::Shape::Line, 10_000)
            .unwrap_or_else(|| strip_tags(&cut))
            .trim()
            .to_owned()
    })
}

/// Memoises a conversion of `inputs`: a digest renders the same essay's excerpt once per
/// subscriber, and HTML-to-text is most of the cost of rendering (see the benchmark).
fn memo(kind: u8, inputs: &[&str], n: usize, compute: impl FnOnce() -> String) -> String {
    use std::collections::HashMap;
    use std::hash::{Hash, Hasher};
    use std::sync::{Mutex, OnceLock};
    type Key = (u8, u64, usize, usize);
    static CACHE: OnceLock<Mutex<HashMap<Key, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    inputs.hash(&mut h);
    let key = (kind, h.finish(), inputs.iter().map(|s| s.len()).sum(), n);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return hit;
    }
    let value = compute();
    if let Ok(mut c) = cache.lock() {
        // Bounded: a long-running daemon must not grow without limit.
        if c.len() >= 4096 {
            c.clear();
        }
        c.insert(key, value.clone());
    }
    value
}

/// Converts sanitised HTML to wrapped plain text for the text/plain part: link text
/// followed by `<url>`, no emphasis markers, no address cut across lines.
pub fn html_to_text(input: &str, width: usize) -> String {
    memo(0, &[input], width, || convert_html(input, width))
}

fn convert_html(input: &str, width: usize) -> String {
    let cut = truncate_at_char(input, MAX_TEXT_INPUT);
    super::prose::convert(cut, super::prose::Shape::Text, width)
        .unwrap_or_else(|| strip_tags(cut))
        .trim()
        .to_owned()
}

/// Word-wraps plain text to `width` columns, every line starting with `indent`; never
/// splits a word. Memoised: the same reply is wrapped for every copy of a digest.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    memo(2, &[text, indent], width, || {
        let opts = textwrap::Options::new(width)
            .initial_indent(indent)
            .subsequent_indent(indent)
            // Break only at spaces: the default also breaks after "/" and "-", which
            // cuts URLs in two.
            .word_separator(textwrap::WordSeparator::AsciiSpace)
            .word_splitter(textwrap::WordSplitter::NoHyphenation)
            .break_words(false);
        textwrap::fill(text, opts)
    })
}

/// How many words some HTML's text has (templates show "Read in full" only when an
/// excerpt was cut).
pub fn word_count(input_html: &str) -> usize {
    html_to_line(input_html).split_whitespace().count()
}

/// The first `words` words of some HTML's text, with an ellipsis when cut.
pub fn excerpt(input_html: &str, words: usize) -> String {
    memo(1, &[input_html], words, || cut_words(input_html, words))
}

fn cut_words(input_html: &str, words: usize) -> String {
    let text = html_to_line(input_html);
    let all: Vec<&str> = text.split_whitespace().collect();
    if all.len() <= words {
        all.join(" ")
    } else {
        let mut s = all[..words].join(" ");
        s.push('…');
        s
    }
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_doubled_spaces_and_blank_runs() {
        let t = tidy_text("Let  me  begin  by   saying.\n\n\n\nSecond    paragraph.");
        assert_eq!(t, "Let me begin by saying.\n\nSecond paragraph.");
    }

    #[test]
    fn removes_shared_indentation_of_scraped_replies() {
        let t = tidy_text("    Thanks, Sumanta da.\n\n    Examining is needed.");
        assert_eq!(t, "Thanks, Sumanta da.\n\nExamining is needed.");
        let html = markdown_to_html("    Thanks.\n\n    More.", None);
        assert_eq!(html, "<p>Thanks.</p>\n<p>More.</p>");
    }

    #[test]
    fn pairs_backtick_opened_quotes() {
        assert_eq!(
            tidy_text("magazines like `Soviet  Land,’ and more"),
            "magazines like ‘Soviet Land,’ and more"
        );
        assert_eq!(tidy_text("it isn`t fine"), "it isn’t fine");
        // A real code span is left for Markdown.
        assert_eq!(
            tidy_text("run `gazette send` now"),
            "run `gazette send` now"
        );
    }

    #[test]
    fn closes_a_double_quote_that_a_single_quote_ended() {
        assert_eq!(
            tidy_text("he dares to say “..Revolutionary and Internationalist.’"),
            "he dares to say “..Revolutionary and Internationalist.”"
        );
        // Apostrophes inside words stay.
        assert_eq!(tidy_text("“they don’t agree”"), "“they don’t agree”");
    }

    #[test]
    fn drops_spaces_before_punctuation() {
        assert_eq!(
            tidy_text("the USSR  ! And the legacy , too ?"),
            "the USSR! And the legacy, too?"
        );
        assert_eq!(
            tidy_text("the same thing : they said \"costs line by line\" . You"),
            "the same thing: they said \"costs line by line\". You"
        );
    }

    #[test]
    fn sanitises_script_handlers_and_javascript_urls() {
        let html = markdown_to_html(
            "Hi <script>alert(1)</script> <img src=x onerror=\"alert(2)\"> [x](javascript:alert(3)) <iframe src=\"https://e.vil\"></iframe><style>p{}</style>",
            Some("https://example.org"),
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert(1)"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("<iframe"), "{html}");
        assert!(!html.contains("<style"), "{html}");
    }

    #[test]
    fn html_text_is_tidied_but_pre_is_kept() {
        assert_eq!(
            tidy_html("<p>My  grandfather   kept</p><pre>a  b</pre>"),
            "<p>My grandfather kept</p><pre>a  b</pre>"
        );
        assert_eq!(
            html_line("<img src=x onerror=\"alert(1)\">Eve &amp; Bo"),
            "Eve & Bo"
        );
    }

    #[test]
    fn makes_relative_links_absolute() {
        let html = markdown_to_html("[more](/essays/x/)", Some("https://example.org/"));
        assert!(
            html.contains("href=\"https://example.org/essays/x/\""),
            "{html}"
        );
    }

    #[test]
    fn deeply_nested_tables_still_convert() {
        // html2text-style converters recurse per element; Gazette cuts input at 256 KiB
        // so the work stays bounded. 5,000 levels is 165 KB.
        let html = format!(
            "{}deep{}",
            "<table><tr><td>".repeat(5000),
            "</td></tr></table>".repeat(5000)
        );
        assert!(html_to_text(&html, 72).contains("deep"));
        let huge = format!("<p>{}</p>", "word ".repeat(200_000));
        assert!(html_to_text(&huge, 72).len() <= MAX_TEXT_INPUT);
    }

    #[test]
    fn wrapping_never_cuts_an_address() {
        let url = "https://example.org/2026/11/a-very-long-essay-slug-about-harbours/#comment-1234";
        let t = wrap(
            &format!("See {url} for the rest of the argument."),
            30,
            "  ",
        );
        assert!(t.lines().any(|l| l.trim() == url), "{t}");
    }

    #[test]
    fn excerpts_count_words() {
        assert_eq!(excerpt("<p>one two three four</p>", 3), "one two three…");
        assert_eq!(excerpt("<p>one two</p>", 3), "one two");
    }
}
