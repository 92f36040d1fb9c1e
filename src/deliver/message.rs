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
    /// Envelope recipient.
    pub to: String,
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

/// The mailto: unsubscribe address for a digest (until the web endpoint exists).
pub fn unsubscribe_mailto(site: &Site, digest: &Digest) -> String {
    format!(
        "mailto:{}?subject=unsubscribe%20{}",
        site.from.email, digest.name
    )
}

#[derive(Clone)]
struct ListId(String);

impl Header for ListId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Id")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListId(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[derive(Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
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
}

/// Builds the message for one recipient.
pub fn build_message(a: &Addressing<'_>, body: &Rendered) -> Result<Outgoing, BuildError> {
    let fail = |reason: String| BuildError {
        to: a.email.to_owned(),
        reason,
    };
    let address = crate::config::parse_address(a.email).map_err(&fail)?;
    let to = Mailbox::new(a.name.map(plain_line).filter(|n| !n.is_empty()), address);
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
        .subject(plain_line(&body.subject))
        .date(a.date.into())
        .message_id(Some(id.clone()))
        .header(ListId(list_id))
        .header(ListUnsubscribe(format!(
            "<{}>",
            unsubscribe_mailto(a.site, a.digest)
        )));
    if let Some(r) = &a.site.reply_to {
        builder = builder.reply_to(r.clone());
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(
            body.text.clone(),
            body.html.clone(),
        ))
        .map_err(|e| fail(e.to_string()))?;
    Ok(Outgoing {
        file_stem: a.file_stem.clone(),
        message_id: id,
        to: a.email.to_owned(),
        raw: message.formatted(),
        html: body.html.clone(),
        text: body.text.clone(),
    })
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
}
