//! Stable identity for items from the web: guid/id → link → a hash of stable fields.
//! A guid that flips between http and https, a host written in capitals or a trailing
//! slash must not make an old essay new again.

use sha2::{Digest as _, Sha256};

/// Normalises a guid, id or URL into a key: scheme dropped, host lower-cased, trailing
/// slash removed. Non-URL ids (tag:, urn:) are only trimmed.
pub fn normalize_ref(s: &str) -> String {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &s[8..]
    } else if lower.starts_with("http://") {
        &s[7..]
    } else {
        return s.to_owned();
    };
    let (host, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // A slash ending the path is not part of the identity, before a fragment either:
    // WordPress's comment guids are the post guid plus "#comment-N", and a post guid is
    // often its pretty permalink ("…/essay/#comment-5" is "…/essay" + "#comment-5").
    let (path, fragment) = match path.find('#') {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    };
    let mut key = format!("{}{}", host.to_ascii_lowercase(), path);
    while key.ends_with('/') {
        key.pop();
    }
    key.push_str(fragment);
    while key.ends_with('/') {
        key.pop();
    }
    key
}

/// A key from stable fields for items with neither id nor link.
pub fn fallback_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.trim().as_bytes());
        h.update([0]);
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_case_and_trailing_slash_do_not_change_identity() {
        let a = normalize_ref("http://Example.org/?p=12");
        assert_eq!(a, "example.org/?p=12");
        assert_eq!(normalize_ref("https://example.org/?p=12"), a);
        assert_eq!(
            normalize_ref("https://example.org/essays/x/"),
            normalize_ref("http://EXAMPLE.org/essays/x")
        );
        assert_eq!(
            normalize_ref(" tag:example.org,2026:1 "),
            "tag:example.org,2026:1"
        );
        // A comment guid is its post's guid plus a fragment, whatever the slash.
        assert_eq!(
            normalize_ref("http://e.org/2026/01/essay/#comment-5"),
            format!(
                "{}#comment-5",
                normalize_ref("https://e.org/2026/01/essay/")
            )
        );
        assert_eq!(
            normalize_ref("http://e.org/?p=7#comment-5"),
            "e.org/?p=7#comment-5"
        );
        // The path keeps its case: it is significant.
        assert_ne!(
            normalize_ref("https://e.org/A"),
            normalize_ref("https://e.org/a")
        );
    }

    #[test]
    fn fallback_keys_are_deterministic() {
        assert_eq!(fallback_key(&["t", "2026"]), fallback_key(&["t", "2026"]));
        assert_ne!(fallback_key(&["t", "2026"]), fallback_key(&["t", "2027"]));
    }
}
