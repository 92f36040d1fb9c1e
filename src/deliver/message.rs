//! RFC 5322 messages: multipart/alternative (text, then HTML), a Message-ID derived from
//! the edition and the subscriber, and the list headers bulk mail needs.

use chrono::{DateTime, Utc};
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use sha2::{Digest as _, Sha256};

use crate::config::{plain_line, Digest, Site};
use crate::render::Rendered;

/// A finished message, ready for a transport.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// File name without extension for file-based transports.
    pub file_stem: String,
    /// The Message-ID, angle brackets included.
    pub message_id: String,
    /// Recipient address, as text.
    pub to: String,
    /// SMTP envelope sender (MAIL FROM).
    pub envelope_from: lettre::Address,
    /// SMTP envelope recipient (RCPT TO).
    pub envelope_to: lettre::Address,
    /// The whole message, CRLF line endings.
    pub raw: Vec<u8>,
    /// The HTML part, for previews.
    pub html: String,
    /// The text part, for previews.
    pub text: String,
}

/// A message could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the message to {to}: {reason}")]
pub struct BuildError {
    /// The recipient.
    pub to: String,
    /// Why.
    pub reason: String,
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `<digest.edition.hash@from-domain>`: the same every time this edition is rendered for
/// this subscriber, so a receiver can fold a duplicate sent after a crash.
pub fn message_id(digest: &str, edition: i64, email: &str, from_domain: &str) -> String {
    let hash = short_hash(&[digest, &edition.to_string(), &email.to_lowercase()]);
    format!("<{digest}.{edition}.{hash}@{from_domain}>")
}

/// The mailto: unsubscribe address for a digest: `to` (the envelope sender, where
/// `gazette inbound` reads), carrying the reader's signed tag as `+unsubscribe.<id>.<mac>`
/// when there is one, so a request names its reader and cannot be forged. A tag that
/// would pass the 64-octet local-part limit is left off.
pub fn unsubscribe_mailto(to: &lettre::Address, digest: &str, tag: Option<&str>) -> String {
    let address = match tag {
        Some(t) if to.user().len() + 1 + t.len() <= 64 => {
            format!("{}+{t}@{}", to.user(), to.domain())
        }
        _ => to.to_string(),
    };
    format!("mailto:{address}?subject=unsubscribe%20{digest}")
}

/// Declares a simple unstructured header type.
macro_rules! text_header {
    ($ty:ident, $name:literal) => {
        #[derive(Clone)]
        struct $ty(String);

        impl Header for $ty {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($ty(s.to_owned()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

/// Longest subject kept, in characters; a longer one is cut with "…".
const MAX_SUBJECT: usize = 200;

/// Longest display name kept in To, in characters.
const MAX_NAME: usize = 100;

/// `s` as one header line of at most `max` characters.
fn header_text(s: &str, max: usize) -> String {
    let line = plain_line(s);
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A Subject that cannot smuggle anything: text that already looks like an RFC 2047
/// encoded word (`=?utf-8?q?…=0D=0A…?=`, which clients would decode into line breaks)
/// or has a word too long to fold is itself encoded, in words folded under 78 octets.
#[derive(Clone)]
struct SafeSubject(String);

impl Header for SafeSubject {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Subject")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(SafeSubject(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        let risky = self.0.contains("=?") || self.0.split(' ').any(|w| w.len() > 60);
        if !risky {
            return HeaderValue::new(Self::name(), self.0.clone());
        }
        HeaderValue::dangerous_new_pre_encoded(Self::name(), self.0.clone(), encoded_words(&self.0))
    }
}

/// `text` as RFC 2047 `B` encoded words of at most 39 octets of UTF-8 each (a 64-octet
/// word with its wrapper), one per folded line.
fn encoded_words(text: &str) -> String {
    use base64::Engine as _;
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 39).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let chunk = &text[start..end];
        words.push(format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(chunk)
        ));
        start = end;
    }
    words.join("\r\n ")
}

text_header!(ListId, "List-Id");
text_header!(ListUnsubscribe, "List-Unsubscribe");
text_header!(ListUnsubscribePost, "List-Unsubscribe-Post");
text_header!(AutoSubmitted, "Auto-Submitted");
text_header!(ListArchive, "List-Archive");

/// Builds the DKIM signer once per run; the signature covers the headers a receiver and
/// a one-click unsubscriber rely on.
pub fn dkim_signer(
    d: &crate::config::DkimSettings,
) -> Result<lettre::message::dkim::DkimConfig, String> {
    use lettre::message::dkim::{
        DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
        DkimSigningKey,
    };
    let algorithm = match d.algorithm {
        crate::config::DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
        crate::config::DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
    };
    let key = DkimSigningKey::new(d.key.expose(), algorithm).map_err(|e| e.to_string())?;
    // Content-Type is not listed: lettre writes the multipart's Content-Type with the
    // body, not among the headers it signs, so listing it would break every signature
    // (the body hash covers the boundaries and every part's headers anyway).
    // The second From, Subject and List-Unsubscribe(-Post) over-sign (RFC 6376 §8.15):
    // they stand for "no further instance", so a copy with one of them prepended (a
    // second From shown to the reader, a repointed unsubscribe) fails verification.
    let headers = [
        "From",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "To",
        "MIME-Version",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
        "From",
        "Subject",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]
    .into_iter()
    .map(HeaderName::new_from_ascii_str)
    .collect();
    Ok(DkimConfig::new(
        d.selector.clone(),
        d.domain.clone(),
        key,
        headers,
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    ))
}

/// Everything a message needs besides its rendered bodies.
pub struct Addressing<'a> {
    /// The site (From, Reply-To, List-Id domain).
    pub site: &'a Site,
    /// The digest.
    pub digest: &'a Digest,
    /// Edition number (0 for test copies).
    pub edition: i64,
    /// Recipient address.
    pub email: &'a str,
    /// Recipient name.
    pub name: Option<&'a str>,
    /// Date header.
    pub date: DateTime<Utc>,
    /// File name stem for file transports.
    pub file_stem: String,
    /// DKIM signer, if configured.
    pub dkim: Option<&'a lettre::message::dkim::DkimConfig>,
    /// The recipient's own https one-click unsubscribe URL (RFC 8058), when the web
    /// endpoint is configured.
    pub one_click: Option<&'a str>,
    /// The digest's own web archive (`archive = true`), for List-Archive; else
    /// `site.archive_url`.
    pub list_archive: Option<&'a str>,
    /// The envelope sender (`delivery.return_path`); `None`: the From address.
    pub return_path: Option<&'a lettre::Address>,
    /// The reader's mailto: unsubscribe URL ([`unsubscribe_mailto`]), for List-Unsubscribe.
    pub mailto: &'a str,
    /// VERP: add `+<message>` to the envelope sender's local part.
    pub verp: bool,
}

/// The envelope sender of a message with Message-ID `id`: `return_path` (or `from`),
/// with VERP `<local>+<id's local part>@<domain>`, so a bounce names its message. An
/// address that would pass the 64-character local-part limit is left without VERP.
pub(crate) fn envelope_sender(
    from: &lettre::Address,
    return_path: Option<&lettre::Address>,
    verp: bool,
    id: &str,
) -> lettre::Address {
    let base = return_path.unwrap_or(from);
    if !verp {
        return base.clone();
    }
    let tag = id
        .trim_start_matches('<')
        .split('@')
        .next()
        .unwrap_or_default();
    let local = format!("{}+{tag}", base.user());
    if local.len() > 64 {
        return base.clone();
    }
    lettre::Address::new(local, base.domain()).unwrap_or_else(|_| base.clone())
}

/// Builds the message for one recipient.
pub fn build_message(a: &Addressing<'_>, body: &Rendered) -> Result<Outgoing, BuildError> {
    let fail = |reason: String| BuildError {
        to: a.email.to_owned(),
        reason,
    };
    let address = crate::config::parse_address(a.email).map_err(&fail)?;
    let to = Mailbox::new(
        a.name
            .map(|n| header_text(n, MAX_NAME))
            .filter(|n| !n.is_empty()),
        address.clone(),
    );
    let domain = a.site.from.email.domain().to_owned();
    let id = message_id(&a.digest.name, a.edition, a.email, &domain);
    let list_id = format!("<{}.{}>", a.digest.name.to_lowercase(), domain);
    let phrase = plain_line(&format!("{} {}", a.site.name, a.digest.title));
    let list_id = if phrase.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && !phrase.contains(['"', '\\'])
    {
        format!("\"{phrase}\" {list_id}")
    } else {
        list_id
    };
    let mut builder = Message::builder()
        .from(a.site.from.clone())
        .to(to)
        .header(SafeSubject(header_text(&body.subject, MAX_SUBJECT)))
        .date(a.date.into())
        .message_id(Some(id.clone()))
        .header(ListId(list_id));
    let mailto = a.mailto;
    builder = match a.one_click {
        // RFC 8058: the https URL, POSTed to with this body, unsubscribes at once.
        Some(url) => builder
            .header(ListUnsubscribe(format!("<{url}>, <{mailto}>")))
            .header(ListUnsubscribePost("List-Unsubscribe=One-Click".into())),
        None => builder.header(ListUnsubscribe(format!("<{mailto}>"))),
    };
    if let Some(archive) = a.list_archive.or(a.site.archive_url.as_deref()) {
        builder = builder.header(ListArchive(format!("<{archive}>")));
    }
    finish(
        builder,
        Parts {
            site: a.site,
            dkim: a.dkim,
            email: a.email,
            address,
            envelope_from: envelope_sender(&a.site.from.email, a.return_path, a.verp, &id),
            id,
            file_stem: a.file_stem.clone(),
            text: body.text.clone(),
            html: body.html.clone(),
        },
    )
}

/// What [`finish`] needs besides the headers already set.
struct Parts<'a> {
    site: &'a Site,
    dkim: Option<&'a lettre::message::dkim::DkimConfig>,
    email: &'a str,
    address: lettre::Address,
    envelope_from: lettre::Address,
    id: String,
    file_stem: String,
    text: String,
    html: String,
}

/// The part every message shares: Reply-To, Auto-Submitted, the two bodies, the DKIM
/// signature, and the envelope.
fn finish(
    mut builder: lettre::message::MessageBuilder,
    p: Parts<'_>,
) -> Result<Outgoing, BuildError> {
    if let Some(r) = &p.site.reply_to {
        builder = builder.reply_to(r.clone());
    }
    // RFC 3834: automatic mail; vacation responders must not answer it.
    builder = builder.header(AutoSubmitted("auto-generated".into()));
    let mut message = builder
        .multipart(MultiPart::alternative_plain_html(
            p.text.clone(),
            p.html.clone(),
        ))
        .map_err(|e| BuildError {
            to: p.email.to_owned(),
            reason: e.to_string(),
        })?;
    if let Some(dkim) = p.dkim {
        message.sign(dkim);
    }
    Ok(Outgoing {
        file_stem: p.file_stem,
        message_id: p.id,
        to: p.email.to_owned(),
        envelope_from: p.envelope_from,
        envelope_to: p.address,
        raw: message.formatted(),
        html: p.html,
        text: p.text,
    })
}

/// A one-off message to one address that is not a digest (the sign-up confirmation):
/// From, To, Subject, Date, a unique Message-ID, Auto-Submitted; text and HTML parts.
pub struct Notice<'a> {
    /// The site (From, Reply-To).
    pub site: &'a Site,
    /// Recipient address (already validated).
    pub email: &'a str,
    /// Recipient name, if given.
    pub name: Option<&'a str>,
    /// Subject; made one line.
    pub subject: &'a str,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// Makes the Message-ID and file name unique (e.g. "confirm-17").
    pub key: &'a str,
    /// Date header.
    pub date: DateTime<Utc>,
    /// DKIM signer, if configured.
    pub dkim: Option<&'a lettre::message::dkim::DkimConfig>,
}

/// Builds a [`Notice`].
pub fn build_notice(n: Notice<'_>) -> Result<Outgoing, BuildError> {
    let fail = |reason: String| BuildError {
        to: n.email.to_owned(),
        reason,
    };
    let address = crate::config::parse_address(n.email).map_err(&fail)?;
    let domain = n.site.from.email.domain().to_owned();
    let id = format!(
        "<{}.{}@{domain}>",
        n.key,
        short_hash(&[n.key, &n.email.to_lowercase()])
    );
    let to = Mailbox::new(
        n.name
            .map(|s| header_text(s, MAX_NAME))
            .filter(|s| !s.is_empty()),
        address.clone(),
    );
    let builder = Message::builder()
        .from(n.site.from.clone())
        .to(to)
        .header(SafeSubject(header_text(n.subject, MAX_SUBJECT)))
        .date(n.date.into())
        .message_id(Some(id.clone()));
    finish(
        builder,
        Parts {
            site: n.site,
            dkim: n.dkim,
            email: n.email,
            address,
            envelope_from: n.site.from.email.clone(),
            id,
            file_stem: n.key.to_owned(),
            text: n.text,
            html: n.html,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let a = message_id("weekly", 3, "Ann@example.org", "mag.example");
        assert_eq!(a, message_id("weekly", 3, "ann@example.org", "mag.example"));
        assert_ne!(a, message_id("weekly", 4, "ann@example.org", "mag.example"));
        assert_ne!(a, message_id("weekly", 3, "bob@example.org", "mag.example"));
        assert!(
            a.starts_with("<weekly.3.") && a.ends_with("@mag.example>"),
            "{a}"
        );
    }

    #[test]
    fn encoded_word_shaped_and_huge_headers_are_encoded_folded_and_capped() {
        let smuggle = "=?utf-8?q?Hi=0D=0ABcc:_victim@example.net?=";
        let long_word = "x".repeat(100_000);
        for subject in [
            smuggle.to_owned(),
            long_word.clone(),
            format!("{smuggle} {long_word}"),
        ] {
            let name = format!("{smuggle}{}", "n".repeat(100_000));
            let m = Message::builder()
                .from("digest@example.org".parse().expect("address"))
                .to(Mailbox::new(
                    Some(header_text(&name, MAX_NAME)),
                    "ann@example.org".parse().expect("address"),
                ))
                .header(SafeSubject(header_text(&subject, MAX_SUBJECT)))
                .body(String::from("body"))
                .expect("message");
            let raw = m.formatted();
            let text = String::from_utf8_lossy(&raw);
            let head = &text[..text.find("\r\n\r\n").expect("header end")];
            let over: Vec<&str> = head.lines().filter(|l| l.len() > 78).collect();
            assert!(over.is_empty(), "{over:?}");
            assert!(!head.contains("=?utf-8?q?Hi"), "passed raw:\n{head}");
            let parsed = mail_parser::MessageParser::default()
                .parse(&raw[..])
                .expect("parses");
            let got = parsed.subject().expect("subject");
            assert_eq!(
                got,
                header_text(&subject, MAX_SUBJECT),
                "decodes to what was meant"
            );
            assert!(!got.contains('\n') && !got.contains('\r'));
            let to = parsed
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.name())
                .expect("name");
            assert!(
                to.starts_with(smuggle) && to.chars().count() == MAX_NAME,
                "{to}"
            );
        }
    }
}
