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

/// The mailto: unsubscribe address for a digest (until the web endpoint exists).
pub fn unsubscribe_mailto(site: &Site, digest: &Digest) -> String {
    format!(
        "mailto:{}?subject=unsubscribe%20{}",
        site.from.email, digest.name
    )
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
    let headers = [
        "From",
        "Subject",
        "Date",
        "Message-ID",
        "To",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
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
}

/// Builds the message for one recipient.
pub fn build_message(a: &Addressing<'_>, body: &Rendered) -> Result<Outgoing, BuildError> {
    let fail = |reason: String| BuildError {
        to: a.email.to_owned(),
        reason,
    };
    let address = crate::config::parse_address(a.email).map_err(&fail)?;
    let to = Mailbox::new(
        a.name.map(plain_line).filter(|n| !n.is_empty()),
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
        .subject(plain_line(&body.subject))
        .date(a.date.into())
        .message_id(Some(id.clone()))
        .header(ListId(list_id));
    let mailto = unsubscribe_mailto(a.site, a.digest);
    builder = match a.one_click {
        // RFC 8058: the https URL, POSTed to with this body, unsubscribes at once.
        Some(url) => builder
            .header(ListUnsubscribe(format!("<{url}>, <{mailto}>")))
            .header(ListUnsubscribePost("List-Unsubscribe=One-Click".into())),
        None => builder.header(ListUnsubscribe(format!("<{mailto}>"))),
    };
    if let Some(archive) = &a.site.archive_url {
        builder = builder.header(ListArchive(format!("<{archive}>")));
    }
    finish(
        builder,
        Parts {
            site: a.site,
            dkim: a.dkim,
            email: a.email,
            address,
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
        envelope_from: p.site.from.email.clone(),
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
        n.name.map(plain_line).filter(|s| !s.is_empty()),
        address.clone(),
    );
    let builder = Message::builder()
        .from(n.site.from.clone())
        .to(to)
        .subject(plain_line(n.subject))
        .date(n.date.into())
        .message_id(Some(id.clone()));
    finish(
        builder,
        Parts {
            site: n.site,
            dkim: n.dkim,
            email: n.email,
            address,
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
}
