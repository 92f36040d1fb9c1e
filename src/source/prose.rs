//! HTML to plain prose, the one path for excerpts, summaries, titles and text parts.
//!
//! html2text's own plain mode writes Markdown-like artefacts (`**bold**`, `*em*`,
//! `[text][1]` with `[1]: http://…` footnotes, `# ` before headings) and wraps inside
//! URLs. Readers of a text digest want none of that: a link keeps its words, and in the
//! full text its address follows as `text <url>`; in a line (title, excerpt, summary) no
//! address appears at all. Emphasis shows no markers, and a URL is never cut in two.

use html2text::render::{TaggedLine, TextDecorator};

/// Where converted text is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One line: titles, names, excerpts, summaries. Link text only.
    Line,
    /// A wrapped text part: link text followed by ` <url>`.
    Text,
}

/// A decorator that writes prose: no emphasis markers, links as their text (and, for
/// text parts, their address in angle brackets).
#[derive(Debug, Clone)]
struct Prose {
    shape: Shape,
    /// Addresses of the links being rendered, innermost last.
    links: Vec<String>,
}

impl TextDecorator for Prose {
    type Annotation = ();

    fn decorate_link_start(&mut self, url: &str) -> (String, ()) {
        self.links.push(url.to_owned());
        (String::new(), ())
    }

    fn decorate_link_end(&mut self) -> String {
        match (self.shape, self.links.pop()) {
            (Shape::Text, Some(url)) if shown(&url) => format!(" <{url}>"),
            _ => String::new(),
        }
    }

    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_em_end(&self) -> String {
        String::new()
    }

    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_strong_end(&self) -> String {
        String::new()
    }

    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }

    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_code_end(&self) -> String {
        String::new()
    }

    fn decorate_preformat_first(&self) {}

    fn decorate_preformat_cont(&self) {}

    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        (title.to_owned(), ())
    }

    fn header_prefix(&self, _level: usize) -> String {
        String::new()
    }

    fn quote_prefix(&self) -> String {
        match self.shape {
            Shape::Text => "> ".into(),
            Shape::Line => String::new(),
        }
    }

    fn unordered_item_prefix(&self) -> String {
        match self.shape {
            Shape::Text => "- ".into(),
            Shape::Line => String::new(),
        }
    }

    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }

    fn make_subblock_decorator(&self) -> Self {
        Prose {
            shape: self.shape,
            links: Vec::new(),
        }
    }

    fn decorate_superscript_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_superscript_end(&self) -> String {
        String::new()
    }

    fn finalise(&mut self, _urls: Vec<String>) -> Vec<TaggedLine<()>> {
        Vec::new()
    }
}

/// Only web and mail addresses are worth showing a reader.
fn shown(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
}

/// Converts HTML to prose of the given shape, wrapped at `width` (lines: use a large
/// width and join). `None` when the converter gives up (the caller strips tags).
pub fn convert(html: &str, shape: Shape, width: usize) -> Option<String> {
    // html2text would break an address longer than the width; it lays out unwrapped
    // lines here and each is wrapped by words below, an address being one word.
    let text = html2text::config::with_decorator(Prose {
        shape,
        links: Vec::new(),
    })
    .no_link_wrapping()
    .string_from_read(html.as_bytes(), 100_000)
    .ok()?;
    Some(match shape {
        Shape::Line => text,
        Shape::Text => fold_autolinks(&text)
            .lines()
            .map(|l| wrap_line(l, width.max(8)))
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// Wraps one laid-out line by words, continuing under its quote marks or list marker.
fn wrap_line(line: &str, width: usize) -> String {
    let quotes = line.len() - line.trim_start_matches("> ").len();
    let body = &line[quotes..];
    let marker = body
        .split_once(' ')
        .filter(|(m, _)| {
            *m == "-"
                || (m.ends_with('.')
                    && m[..m.len() - 1].chars().all(|c| c.is_ascii_digit())
                    && m.len() > 1)
        })
        .map_or(0, |(m, _)| m.len() + 1);
    let hang = format!("{}{}", &line[..quotes], " ".repeat(marker));
    let opts = textwrap::Options::new(width)
        .subsequent_indent(&hang)
        // Break only at spaces: the default also breaks after "/" and "-" inside URLs.
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        .word_splitter(textwrap::WordSplitter::NoHyphenation)
        .break_words(false);
    textwrap::fill(line, opts)
}

/// `https://x.org <https://x.org>` (a link whose text is its address) reads as `<https://x.org>`.
fn fold_autolinks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" <") {
        let (before, after) = rest.split_at(at);
        let inner = &after[2..];
        let Some(end) = inner.find('>') else { break };
        let url = &inner[..end];
        match before.strip_suffix(url) {
            Some(head) if !url.is_empty() => {
                out.push_str(head);
                out.push('<');
                out.push_str(url);
                out.push('>');
            }
            _ => {
                out.push_str(before);
                out.push_str(" <");
                out.push_str(url);
                out.push('>');
            }
        }
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    out
}

/// HTML elements: a balanced use of any of them is markup (a `<script>` in a title is
/// markup to strip, not words to show).
const ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "article",
    "aside",
    "b",
    "bdi",
    "bdo",
    "big",
    "blockquote",
    "body",
    "button",
    "center",
    "cite",
    "code",
    "dd",
    "del",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "font",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "html",
    "i",
    "iframe",
    "ins",
    "kbd",
    "label",
    "li",
    "mark",
    "nav",
    "noscript",
    "object",
    "ol",
    "option",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "script",
    "section",
    "select",
    "small",
    "span",
    "strike",
    "strong",
    "style",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "time",
    "title",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
];
/// Elements that never close.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Whether a one-line text that looks like HTML is better read as plain text: a title
/// such as "Why <strong> is not <b>" mentions tags, and parsed as HTML its words would
/// vanish. Markup is balanced and made of HTML elements; an unclosed or stray tag, or a
/// name no HTML element has ("Vec<T>"), means the angle brackets are text.
pub fn mentions_tags(s: &str) -> bool {
    let mut open: Vec<String> = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let closing = rest.starts_with('/');
        let name: String = rest
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            continue; // "a < b": not a tag at all
        }
        let void = VOID.contains(&name.as_str());
        if !void && !ELEMENTS.contains(&name.as_str()) {
            return true;
        }
        let Some(end) = rest.find('>') else {
            return true;
        };
        let self_closing = void || rest[..end].ends_with('/');
        if closing {
            if open.pop().as_deref() != Some(name.as_str()) {
                return true;
            }
        } else if !self_closing {
            open.push(name);
        }
        rest = &rest[end + 1..];
    }
    !open.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(html: &str) -> String {
        convert(html, Shape::Line, 10_000).unwrap()
    }

    #[test]
    fn lines_keep_link_text_and_lose_markers_and_addresses() {
        let t = line("<p>See <a href=\"https://e.org/x\">the <strong>whole</strong> essay</a>, <em>resolved</em>. <a href=\"https://e.org/more\">Read more →</a></p>");
        assert_eq!(t.trim(), "See the whole essay, resolved. Read more →");
        for junk in ["][", "]: http", "**", "*resolved*", "https://"] {
            assert!(!t.contains(junk), "{junk}: {t}");
        }
        assert_eq!(line("<h2>Heading</h2>").trim(), "Heading");
    }

    #[test]
    fn text_parts_show_addresses_whole_after_the_words() {
        let long = format!("https://example.org/{}", "segment/".repeat(20));
        let t = convert(
            &format!("<p>A <a href=\"{long}\">long link</a> in a paragraph that wraps at forty columns, and <a href=\"https://e.org/\">https://e.org/</a>.</p>"),
            Shape::Text,
            40,
        )
        .unwrap();
        let words = t.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains(&format!("long link <{long}>")), "{t}");
        assert!(t.lines().any(|l| l == format!("<{long}>")), "{t}");
        assert!(t.contains(" <https://e.org/>."), "{t}");
        assert!(!t.contains("https://e.org/ <"), "{t}");
        for l in t.lines() {
            assert!(
                !l.contains("segment/") || l.contains(&long),
                "a URL split across lines: {t}"
            );
        }
    }

    #[test]
    fn javascript_and_relative_links_show_no_address() {
        let t = convert(
            "<a href=\"javascript:x()\">x</a> <a href=\"/rel\">y</a>",
            Shape::Text,
            72,
        )
        .unwrap();
        assert_eq!(t.trim(), "x y");
    }

    #[test]
    fn tags_mentioned_as_text_are_told_from_inline_markup() {
        assert!(mentions_tags("Why <strong> is not <b>"));
        assert!(mentions_tags("The <div> soup"));
        assert!(mentions_tags("Use <code>x</code> and <br"));
        assert!(!mentions_tags("The <em>Beagle</em> voyage"));
        assert!(!mentions_tags("Line<br/>break, a < b"));
        assert!(!mentions_tags("Plain title"));
        assert!(
            !mentions_tags("<script>alert(1)</script>A Fine Title"),
            "markup, to strip"
        );
        assert!(mentions_tags("Vec<T> in Rust"));
    }
}
