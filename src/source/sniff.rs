//! What a fetched document is, and its text: encoding sniffed as browsers and feedparser
//! do (a BOM, then UTF-16 by its zero bytes, then the HTTP charset or the XML
//! declaration, then UTF-8 if the bytes are valid UTF-8, else Windows-1252, the
//! superset of Latin-1 every browser uses for it), so a feed that ordinary readers
//! accept is not refused for its bytes.

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

/// What a document looks like once decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An XML document (RSS, Atom, or something else).
    Xml,
    /// A JSON document.
    Json,
    /// Neither; the text says what it seems to be.
    Other(String),
}

/// The document as UTF-8 text. An XML declaration naming another encoding is rewritten
/// to say UTF-8, so the XML parser does not decode it a second time.
pub fn decode(bytes: &[u8], http_charset: Option<&str>) -> String {
    let (encoding, skip) = sniff(bytes, http_charset);
    let (text, _, _) = encoding.decode(&bytes[skip..]);
    let text = text.trim_start_matches('\u{feff}');
    match declared_encoding(text.as_bytes()) {
        Some(decl) if !decl.eq_ignore_ascii_case("utf-8") => text.replacen(&decl, "UTF-8", 1),
        _ => text.to_owned(),
    }
}

fn sniff(bytes: &[u8], http_charset: Option<&str>) -> (&'static Encoding, usize) {
    if let Some((enc, len)) = Encoding::for_bom(bytes) {
        return (enc, len);
    }
    // UTF-16 without a BOM: "<" and "?" with zero bytes between them.
    if bytes.len() >= 4 {
        if bytes[0] != 0 && bytes[1] == 0 && bytes[2] != 0 && bytes[3] == 0 {
            return (UTF_16LE, 0);
        }
        if bytes[0] == 0 && bytes[1] != 0 && bytes[2] == 0 && bytes[3] != 0 {
            return (UTF_16BE, 0);
        }
    }
    let valid_utf8 = std::str::from_utf8(bytes).is_ok();
    // The HTTP charset, then the XML declaration; a claim the bytes disprove is passed
    // over: "UTF-8" for bytes that are not, or Latin-1 for bytes that are valid UTF-8
    // (real Latin-1 with accented letters almost never is).
    let believable = |label: Option<String>| -> Option<&'static Encoding> {
        let enc = Encoding::for_label(label?.trim().as_bytes())?;
        let disproved = (enc == UTF_8 && !valid_utf8) || (enc == WINDOWS_1252 && valid_utf8);
        (!disproved).then_some(enc)
    };
    let declared = believable(http_charset.map(str::to_owned))
        .or_else(|| believable(declared_encoding(bytes)));
    match declared {
        // A UTF-16 label on bytes without zero bytes is a template's mistake.
        Some(enc) if enc == UTF_16LE || enc == UTF_16BE => (UTF_8, 0),
        Some(enc) => (enc, 0),
        None if valid_utf8 => (UTF_8, 0),
        None => (WINDOWS_1252, 0),
    }
}

/// The `encoding` of an XML declaration at the start of the document.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(256)];
    let head = String::from_utf8_lossy(head);
    let decl = head.trim_start().strip_prefix("<?xml")?;
    let decl = &decl[..decl.find("?>")?];
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].to_owned())
}

/// The charset parameter of a Content-Type header.
pub fn charset_of(content_type: Option<&str>) -> Option<&str> {
    content_type?
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("charset="))
        .map(|c| c.trim_matches('"'))
}

/// What the decoded text is.
pub fn kind(text: &str) -> Kind {
    let t = text.trim_start();
    if t.is_empty() {
        return Kind::Other("an empty document, not a feed".into());
    }
    if t.starts_with('{') || t.starts_with('[') {
        return Kind::Json;
    }
    if !t.starts_with('<') {
        let start: String = t.chars().take(40).collect();
        return Kind::Other(format!(
            "neither XML nor JSON (it starts with {start:?}), not a feed"
        ));
    }
    match root_element(t) {
        Some(root) if root.eq_ignore_ascii_case("html") => Kind::Other(
            "an HTML page, not a feed; the page's <link rel=\"alternate\"> names its feed address"
                .into(),
        ),
        _ => Kind::Xml,
    }
}

/// The name of the first element, past the prolog, comments and doctype.
pub fn root_element(text: &str) -> Option<String> {
    let mut rest = text;
    loop {
        let at = rest.find('<')?;
        rest = &rest[at + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            if rest.to_ascii_lowercase().starts_with("!doctype html") {
                return Some("html".into());
            }
            let end = if rest.starts_with("!--") {
                rest.find("-->")? + 3
            } else {
                rest.find('>')? + 1
            };
            rest = &rest[end..];
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect();
        return (!name.is_empty()).then_some(name);
    }
}

/// `<rss>` without the `version` attribute, which some generators leave out and feed
/// readers accept: given the RSS 2.0 it always is in practice.
pub fn with_rss_version(text: String) -> String {
    let Some(at) = text.find("<rss") else {
        return text;
    };
    let tag_end = match text[at..].find('>') {
        Some(e) => at + e,
        None => return text,
    };
    let tag = &text[at..tag_end];
    let next = tag[4..].chars().next();
    if tag.contains("version=") || !matches!(next, None | Some(' ' | '\n' | '\r' | '\t')) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..at + 4]);
    out.push_str(" version=\"2.0\"");
    out.push_str(&text[at + 4..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_without_a_declaration_and_utf16_without_a_bom_decode() {
        let latin1 = b"<rss version=\"2.0\"><channel><title>Caf\xe9</title></channel></rss>";
        assert!(decode(latin1, None).contains("Café"));
        let utf16: Vec<u8> = "<rss><channel><title>Straße</title></channel></rss>"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(decode(&utf16, None).contains("Straße"));
        let be: Vec<u8> = "<feed>Ω</feed>"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(decode(&be, None), "<feed>Ω</feed>");
    }

    #[test]
    fn a_declared_encoding_is_used_and_then_rewritten() {
        let doc =
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss><title>Caf\xe9</title></rss>";
        let text = decode(doc, None);
        assert!(
            text.contains("Café") && text.contains("encoding=\"UTF-8\""),
            "{text}"
        );
        // UTF-8 that claims Latin-1 is still UTF-8.
        let lying = "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?><rss><title>Café</title></rss>";
        assert!(decode(lying.as_bytes(), Some("ISO-8859-1")).contains("Café"));
        assert_eq!(
            charset_of(Some("text/xml; charset=\"windows-1252\"")),
            Some("windows-1252")
        );
    }

    #[test]
    fn a_charset_the_bytes_disprove_is_passed_over() {
        let doc =
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss><title>Caf\xe9</title></rss>";
        assert!(decode(doc, Some("utf-8")).contains("Café"));
    }

    #[test]
    fn documents_say_what_they_are() {
        assert_eq!(kind("{\"a\":1}"), Kind::Json);
        assert_eq!(kind("<?xml version=\"1.0\"?>\n<rss/>"), Kind::Xml);
        assert!(matches!(kind("<!DOCTYPE html><html>"), Kind::Other(w) if w.contains("HTML page")));
        assert!(matches!(kind("  "), Kind::Other(w) if w.contains("empty")));
        assert!(matches!(kind("Hello"), Kind::Other(w) if w.contains("neither XML nor JSON")));
        assert_eq!(
            root_element("<?xml?><!-- c --><catalog>").as_deref(),
            Some("catalog")
        );
    }

    #[test]
    fn rss_without_a_version_gets_one() {
        assert_eq!(
            with_rss_version("<rss><channel/></rss>".into()),
            "<rss version=\"2.0\"><channel/></rss>"
        );
        assert_eq!(
            with_rss_version("<rss version=\"0.91\">".into()),
            "<rss version=\"0.91\">"
        );
        assert_eq!(with_rss_version("<rssx>".into()), "<rssx>");
    }
}
