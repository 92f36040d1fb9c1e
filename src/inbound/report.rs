//! Reading one message that came back: a delivery status notification (RFC 3464, or the
//! plain-text bounces Exim and Gmail still send with `X-Failed-Recipients`), a complaint
//! report (ARF, RFC 5965), a request sent to a `List-Unsubscribe` mailto address, or
//! something else. Plain functions over bytes; nothing here touches the store.

use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest as _, Sha256};

/// Largest message read; a bigger one is counted and left alone (a bounce that returns a
/// whole digest is well under 1 MiB).
pub const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// Most recipient groups read from one delivery status report.
const MAX_RECIPIENTS: usize = 100;

/// What one message says, before anyone looks it up.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// Its Message-ID, or `sha256:<hex>` of its bytes: how a second reading is known.
    pub key: String,
    /// What kind of message it is.
    pub said: Said,
    /// What it says about the message it concerns.
    pub clues: Clues,
}

/// The kinds of message `gazette inbound` acts on, and the rest.
#[derive(Debug, Clone, PartialEq)]
pub enum Said {
    /// A delivery failed, for good (5.x.x) or for now (4.x.x, or delayed).
    Failure {
        /// Whether the failure is permanent.
        permanent: bool,
        /// The enhanced status code (RFC 3463), e.g. "5.1.1".
        status: String,
        /// The remote server's words, if given.
        diagnostic: String,
        /// The recipients the report names (Final-Recipient, Original-Recipient,
        /// X-Failed-Recipients), lower-cased.
        recipients: Vec<String>,
    },
    /// A complaint (ARF `Feedback-Type`, lower-cased; "abuse" when absent).
    Complaint {
        /// The feedback type.
        feedback_type: String,
    },
    /// Sent to an address that carries an unsubscribe tag (`+unsubscribe.<id>.<mac>`).
    Unsubscribe {
        /// The tag, as found (not yet verified).
        tag: String,
    },
    /// Anything else, with why it was not taken for one of the above.
    Other(String),
}

/// What identifies the message a report is about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clues {
    /// Message-IDs of the returned original (its headers, in the report).
    pub message_ids: Vec<String>,
    /// VERP tags (`<digest>.<edition>.<hash>`) from the address the report was sent to,
    /// or from ARF's `Original-Mail-From`.
    pub verp_tags: Vec<String>,
    /// Unsubscribe tags from the returned original's `List-Unsubscribe` header.
    pub mail_tags: Vec<String>,
}

/// Prefix of the mailto unsubscribe tag in an address's `+` extension.
pub const UNSUBSCRIBE_TAG: &str = "unsubscribe.";

/// Reads one message. `recipient` is the address it was delivered to, when the MTA says
/// so (Postfix pipe's `${original_recipient}`); headers such as X-Original-To and
/// Delivered-To are read as well.
pub fn read(raw: &[u8], recipient: Option<&str>) -> Read {
    let key = || format!("sha256:{:x}", Sha256::digest(raw));
    if raw.len() > MAX_MESSAGE {
        return Read {
            key: key(),
            said: Said::Other(format!(
                "larger than {} MiB; not read",
                MAX_MESSAGE / 1024 / 1024
            )),
            clues: Clues::default(),
        };
    }
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Read {
            key: key(),
            said: Said::Other("not a mail message (no headers)".into()),
            clues: Clues::default(),
        };
    };
    let key = msg
        .message_id()
        .map(|id| format!("<{}>", id.trim()))
        .filter(|id| id.len() > 2 && id.len() <= 998)
        .unwrap_or_else(key);
    let mut clues = Clues::default();
    let mut unsubscribe_tag = None;
    for address in delivered_to(&msg, recipient) {
        match extension(&address) {
            Some(ext) if ext.starts_with(UNSUBSCRIBE_TAG) => {
                unsubscribe_tag.get_or_insert(ext);
            }
            Some(ext) => push_unique(&mut clues.verp_tags, ext),
            None => {}
        }
    }
    let said = if let Some(fields) = part_of(
        &msg,
        &["message/delivery-status", "message/global-delivery-status"],
    ) {
        returned_original(&msg, &mut clues);
        failure_from_dsn(&fields, &msg)
    } else if let Some(fields) = part_of(&msg, &["message/feedback-report"]) {
        returned_original(&msg, &mut clues);
        let groups = field_groups(&fields);
        let first = groups.first();
        let get = |name: &str| first.and_then(|g| field(g, name));
        if let Some(from) = get("original-mail-from") {
            if let Some(ext) = extension(&bare_address(&from)) {
                push_unique(&mut clues.verp_tags, ext);
            }
        }
        Said::Complaint {
            feedback_type: get("feedback-type")
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "abuse".into()),
        }
    } else if let Some(failed) = msg.header_raw("X-Failed-Recipients") {
        // Exim's classic bounce and Gmail's older ones: text, with the original's
        // headers pasted into the body.
        let text = body_text(&msg);
        for id in pasted_message_ids(&text) {
            push_unique(&mut clues.message_ids, id);
        }
        Said::Failure {
            permanent: true,
            status: status_in(&text).unwrap_or_else(|| "5.0.0".into()),
            diagnostic: smtp_reply_in(&text).unwrap_or_default(),
            recipients: failed
                .split(',')
                .map(|a| bare_address(a).to_ascii_lowercase())
                .filter(|a| a.contains('@'))
                .take(MAX_RECIPIENTS)
                .collect(),
        }
    } else if let Some(tag) = unsubscribe_tag {
        Said::Unsubscribe { tag }
    } else {
        Said::Other("not a delivery report, complaint report or unsubscribe request".into())
    };
    Read { key, said, clues }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) && v.len() < MAX_RECIPIENTS {
        v.push(s);
    }
}

/// The addresses the message was delivered to: the MTA's word first, then the headers
/// MTAs add on delivery, then To and Cc.
fn delivered_to(msg: &Message<'_>, recipient: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = recipient.map(bare_address).into_iter().collect();
    for name in ["X-Original-To", "Delivered-To", "Envelope-To"] {
        for v in msg.header_values(name) {
            if let Some(t) = v.as_text() {
                out.push(bare_address(t));
            }
        }
    }
    for a in [msg.to(), msg.cc()].into_iter().flatten() {
        out.extend(addresses(a));
    }
    out.retain(|a| a.contains('@'));
    out.truncate(MAX_RECIPIENTS);
    out
}

fn addresses(a: &Address<'_>) -> Vec<String> {
    a.iter()
        .filter_map(|m| m.address())
        .map(str::to_owned)
        .collect()
}

/// `a@b` out of `Name <a@b>`, `rfc822; a@b` or ` <a@b> `.
pub(crate) fn bare_address(s: &str) -> String {
    let s = s.trim();
    let s = s.rsplit_once(';').map_or(s, |(_, a)| a).trim();
    let s = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    s.trim().to_owned()
}

/// The `+` extension of an address's local part (`news+tag@…` → `tag`).
fn extension(address: &str) -> Option<String> {
    let (local, _) = address.rsplit_once('@')?;
    // A base address with a `+` of its own keeps it: the tag is what follows it.
    let ext = match local.find("+unsubscribe.") {
        Some(i) => &local[i + 1..],
        None => local.split_once('+')?.1,
    };
    (!ext.is_empty() && ext.len() <= 64).then(|| ext.to_owned())
}

/// The decoded body of the first part with one of these content types, as text.
fn part_of(msg: &Message<'_>, types: &[&str]) -> Option<String> {
    msg.parts.iter().find_map(|p| {
        let ct = p.content_type()?;
        let full =
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase();
        if !types.contains(&full.as_str()) {
            return None;
        }
        match &p.body {
            PartType::Text(t) => Some(t.to_string()),
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                Some(String::from_utf8_lossy(b).into_owned())
            }
            _ => None,
        }
    })
}

/// RFC 3464 fields: groups separated by blank lines, each `Name: value` with folded
/// continuation lines. Names lower-cased.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(String, String)> = Vec::new();
    for line in text.lines().take(10_000) {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = group.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

fn field(group: &[(String, String)], name: &str) -> Option<String> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// The worst recipient failure a delivery-status part reports.
fn failure_from_dsn(fields: &str, msg: &Message<'_>) -> Said {
    let groups = field_groups(fields);
    let mut worst: Option<(bool, String, String)> = None;
    let mut recipients = Vec::new();
    let mut actions = Vec::new();
    for g in groups.iter().take(MAX_RECIPIENTS + 1) {
        let action = field(g, "action").map(|a| a.to_ascii_lowercase());
        let status = field(g, "status").and_then(|s| status_in(&s));
        if action.is_none() && status.is_none() {
            continue; // the per-message group (Reporting-MTA, Arrival-Date)
        }
        for name in ["final-recipient", "original-recipient"] {
            if let Some(r) = field(g, name) {
                let a = bare_address(&r).to_ascii_lowercase();
                if a.contains('@') && !recipients.contains(&a) {
                    recipients.push(a);
                }
            }
        }
        let action = action.unwrap_or_default();
        actions.push(action.clone());
        let status = status.unwrap_or_else(|| {
            if action == "failed" {
                "5.0.0".into()
            } else {
                "4.0.0".into()
            }
        });
        let failed = action == "failed" || action == "delayed" || action.is_empty();
        if !failed {
            continue;
        }
        let permanent = action != "delayed" && is_permanent(&status);
        let diagnostic = field(g, "diagnostic-code")
            .map(|d| {
                d.split_once(';')
                    .map_or(d.clone(), |(_, t)| t.trim().to_owned())
            })
            .unwrap_or_default();
        if worst.as_ref().is_none_or(|(p, _, _)| permanent && !p) {
            worst = Some((permanent, status, diagnostic));
        }
    }
    // Gmail's and Microsoft's reports also name the recipient in a header.
    if let Some(failed) = msg.header_raw("X-Failed-Recipients") {
        for a in failed.split(',') {
            let a = bare_address(a).to_ascii_lowercase();
            if a.contains('@') && !recipients.contains(&a) {
                recipients.push(a);
            }
        }
    }
    match worst {
        Some((permanent, status, diagnostic)) => Said::Failure {
            permanent,
            status,
            diagnostic: plain(&diagnostic, 300),
            recipients,
        },
        None => Said::Other(format!(
            "a delivery report that reports no failure (action: {})",
            if actions.is_empty() {
                "none".into()
            } else {
                actions.join(", ")
            }
        )),
    }
}

/// Whether an enhanced status code means the address will not work: 5.x.x, except a
/// full mailbox (5.2.2) and policy refusals (5.7.x, e.g. mail judged spam), which say
/// nothing about the address and are counted as temporary.
pub fn is_permanent(status: &str) -> bool {
    status.starts_with('5') && status != "5.2.2" && !status.starts_with("5.7.")
}

/// The first enhanced status code (`4.2.2`, `5.1.1`) in a text.
fn status_in(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| {
            let p: Vec<&str> = w.split('.').collect();
            p.len() == 3
                && (p[0] == "4" || p[0] == "5")
                && (1..=3).contains(&p[1].len())
                && (1..=3).contains(&p[2].len())
                && p[1..].iter().all(|x| x.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
}

/// The first line of a text bounce that looks like the remote server's reply.
fn smtp_reply_in(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| {
            let code: String = l.chars().take(3).collect();
            (code.starts_with('5') || code.starts_with('4'))
                && code.len() == 3
                && code.bytes().all(|b| b.is_ascii_digit())
        })
        .or_else(|| text.lines().map(str::trim).find(|l| status_in(l).is_some()))
        .map(|l| plain(l, 300))
}

/// One line of at most `max` characters, control characters removed.
fn plain(s: &str, max: usize) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

/// The headers of the original message a report returns (message/rfc822, or
/// text/rfc822-headers): its Message-ID and its List-Unsubscribe tags.
fn returned_original(msg: &Message<'_>, clues: &mut Clues) {
    for p in msg.parts.iter().take(64) {
        let headers_only;
        let original: &Message<'_> = match &p.body {
            PartType::Message(m) => m,
            PartType::Text(t)
                if p.content_type().is_some_and(|ct| {
                    ct.subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
                }) =>
            {
                match MessageParser::default().parse_headers(t.as_bytes()) {
                    Some(m) => {
                        headers_only = m;
                        &headers_only
                    }
                    None => continue,
                }
            }
            _ => continue,
        };
        if let Some(id) = original.message_id() {
            push_unique(&mut clues.message_ids, format!("<{}>", id.trim()));
        }
        // Microsoft returns originals whose folded headers lost their indentation, which
        // ends the header block early for any parser: the Message-ID line is looked for
        // in the first lines of the raw text too.
        let raw = String::from_utf8_lossy(original.raw_message());
        let head: String = raw.lines().take(200).collect::<Vec<_>>().join("\n");
        for id in pasted_message_ids(&head) {
            push_unique(&mut clues.message_ids, id);
        }
        for v in original.header_values("List-Unsubscribe") {
            let text = match v {
                HeaderValue::Text(t) => t.to_string(),
                HeaderValue::TextList(l) => l.join(","),
                HeaderValue::Address(a) => addresses(a).join(","),
                _ => continue,
            };
            for tag in text
                .split(['<', '>', ',', '?', ' '])
                .filter_map(|u| u.strip_prefix("mailto:"))
                .filter_map(extension)
                .filter(|e| e.starts_with(UNSUBSCRIBE_TAG))
            {
                push_unique(&mut clues.mail_tags, tag);
            }
        }
    }
}

/// The text of a message's first text part (a plain-text bounce).
fn body_text(msg: &Message<'_>) -> String {
    msg.body_text(0)
        .map(|t| t.chars().take(MAX_MESSAGE).collect())
        .unwrap_or_default()
}

/// `Message-ID: <…>` lines pasted into a text bounce (the original's headers).
fn pasted_message_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("message-id")
                .then(|| bare_address(value))
        })
        .filter(|id| !id.is_empty() && id.len() < 998)
        .map(|id| format!("<{id}>"))
        .take(8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_codes_are_found_and_judged() {
        assert_eq!(
            status_in("smtp; 550 5.1.1 <a@b>: unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            status_in("4.4.7 (delivery time expired)").as_deref(),
            Some("4.4.7")
        );
        assert_eq!(status_in("version 10.0.1234.5"), None);
        assert!(is_permanent("5.1.1"));
        assert!(is_permanent("5.1.10"));
        assert!(!is_permanent("5.2.2"));
        assert!(!is_permanent("5.7.1"));
        assert!(!is_permanent("4.2.2"));
    }

    #[test]
    fn addresses_are_taken_out_of_their_wrapping() {
        assert_eq!(
            bare_address("rfc822; Ghost@Example.net"),
            "Ghost@Example.net"
        );
        assert_eq!(bare_address("rfc822;<a@b>"), "a@b");
        assert_eq!(bare_address("Name <a+x@b>"), "a+x@b");
        assert_eq!(
            extension("news+essays.3.ab12@x.org").as_deref(),
            Some("essays.3.ab12")
        );
        assert_eq!(extension("news@x.org"), None);
    }

    fn dsn(groups: &str) -> String {
        format!(
            "From: MAILER-DAEMON@mx.test\r\nTo: news+essays.3.00aa@x.test\r\nMessage-ID: <r1@mx.test>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\n{groups}\r\n--b--\r\n"
        )
    }

    #[test]
    fn delivery_reports_are_judged_by_their_worst_recipient() {
        let two = dsn(
            "Final-Recipient: rfc822; a@y.test\r\nAction: delayed\r\nStatus: 4.2.2\r\n\r\n\
                       Final-Recipient: rfc822; b@y.test\r\nAction: failed\r\nStatus: 5.1.1\r\n",
        );
        let r = read(two.as_bytes(), None);
        assert_eq!(r.key, "<r1@mx.test>");
        assert_eq!(r.clues.verp_tags, ["essays.3.00aa"]);
        match r.said {
            Said::Failure {
                permanent,
                status,
                recipients,
                ..
            } => {
                assert!(permanent);
                assert_eq!(status, "5.1.1");
                assert_eq!(recipients, ["a@y.test", "b@y.test"]);
            }
            other => panic!("{other:?}"),
        }
        // Postfix giving up after its queue lifetime: failed, but a 4.x.x condition.
        let expired =
            dsn("Final-Recipient: rfc822; a@y.test\r\nAction: failed\r\nStatus: 4.4.7\r\n");
        assert!(matches!(
            read(expired.as_bytes(), None).said,
            Said::Failure {
                permanent: false,
                ..
            }
        ));
        // A success notice (NOTIFY=SUCCESS) is not a failure.
        let delivered =
            dsn("Final-Recipient: rfc822; a@y.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n");
        assert!(
            matches!(read(delivered.as_bytes(), None).said, Said::Other(ref w) if w.contains("delivered"))
        );
    }

    #[test]
    fn feedback_reports_say_their_type_and_the_original_sender() {
        let arf = "From: dmarc@fbl.test\r\nTo: news@x.test\r\nMessage-ID: <f1@fbl.test>\r\nMIME-Version: 1.0\r\n\
                   Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\n\r\nReport.\r\n\
                   --b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: auth-failure\r\n\
                   Original-Mail-From: <news+essays.4.00bb@x.test>\r\n\r\n\
                   --b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <essays.4.00bb@x.test>\r\n\
                   List-Unsubscribe: <mailto:news+unsubscribe.7.0011@x.test?subject=unsubscribe>\r\n\r\n--b--\r\n";
        let r = read(arf.as_bytes(), None);
        assert_eq!(
            r.said,
            Said::Complaint {
                feedback_type: "auth-failure".into()
            }
        );
        assert_eq!(r.clues.verp_tags, ["essays.4.00bb"]);
        assert_eq!(r.clues.message_ids, ["<essays.4.00bb@x.test>"]);
        assert_eq!(r.clues.mail_tags, ["unsubscribe.7.0011"]);
    }

    #[test]
    fn something_that_is_not_mail_is_counted_as_other() {
        let r = read(b"", None);
        assert!(matches!(r.said, Said::Other(_)), "{r:?}");
        assert!(r.key.starts_with("sha256:"));
        let big = vec![b'a'; MAX_MESSAGE + 1];
        assert!(matches!(read(&big, None).said, Said::Other(ref w) if w.contains("larger")));
    }
}
