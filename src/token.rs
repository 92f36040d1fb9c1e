//! Signed tokens for the links in messages (unsubscribe, confirm, preferences): an
//! HMAC-SHA256 over (subscriber, digest, purpose), verified in constant time, so a link
//! cannot be forged, truncated, moved to another subscriber or used for another purpose.
//! (Ghost once trusted a bare member id in its unsubscribe links.) The secret lives in a
//! file created 0600 on first use, or comes from the environment, and is never printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{SecretSource, WebSettings};

use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// One-click unsubscribe (RFC 8058) and the unsubscribe page.
    Unsubscribe,
    /// Double opt-in confirmation.
    Confirm,
    /// The preferences page.
    Preferences,
    /// Following one essay's conversation, and stopping (the token names the essay).
    Follow,
    /// The unsubscribe tag in a `List-Unsubscribe` mailto address.
    MailUnsubscribe,
}

impl Purpose {
    fn byte(self) -> u8 {
        match self {
            Purpose::Unsubscribe => 1,
            Purpose::Confirm => 2,
            Purpose::Preferences => 3,
            Purpose::Follow => 4,
            Purpose::MailUnsubscribe => 5,
        }
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Subscriber row id.
    pub subscriber: i64,
    /// Digest name.
    pub digest: String,
}

/// The secret could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or creating the secret file failed.
    #[error("cannot use the token secret file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The secret is too short to be safe.
    #[error("the token secret must be at least 32 bytes")]
    Short,
    /// The system's random source failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Signs and verifies tokens with one secret.
pub struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(redacted)")
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn message(subscriber: i64, digest: &str, purpose: Purpose) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + digest.len());
    m.extend_from_slice(&subscriber.to_be_bytes());
    m.push(purpose.byte());
    m.extend_from_slice(digest.as_bytes());
    m
}

impl Signer {
    /// A signer with this secret (at least 32 bytes).
    pub fn new(secret: &[u8]) -> Result<Signer, TokenError> {
        if secret.len() < 32 {
            return Err(TokenError::Short);
        }
        Ok(Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// Loads the secret from `path`, creating it (32 random bytes, mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Signer, TokenError> {
        let file_err = |source| TokenError::File {
            path: path.to_owned(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => Signer::new(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut secret)
                    .map_err(|_| TokenError::Random)?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let mut f = options.open(path).map_err(file_err)?;
                f.write_all(&secret).map_err(file_err)?;
                f.sync_all().map_err(file_err)?;
                Signer::new(&secret)
            }
            Err(e) => Err(file_err(e)),
        }
    }

    /// A signer with a fresh random secret kept nowhere: for previews and test copies,
    /// whose tags are never sent to a reader, so no secret file is made for them.
    pub fn ephemeral() -> Result<Signer, TokenError> {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| TokenError::Random)?;
        Signer::new(&secret)
    }

    /// The signer for a configured secret.
    pub fn from_source(source: &SecretSource) -> Result<Signer, TokenError> {
        match source {
            SecretSource::Env(secret) => Signer::new(secret.expose().as_bytes()),
            SecretSource::File(path) => Signer::load_or_create(path),
        }
    }

    /// A token for this subscriber, digest and purpose (URL-safe).
    pub fn sign(&self, subscriber: i64, digest: &str, purpose: Purpose) -> String {
        let tag = hmac::sign(&self.key, &message(subscriber, digest, purpose));
        let mut raw = Vec::with_capacity(8 + digest.len() + 32);
        raw.extend_from_slice(&subscriber.to_be_bytes());
        raw.extend_from_slice(tag.as_ref());
        raw.extend_from_slice(digest.as_bytes());
        B64.encode(raw)
    }

    /// What a token says, if it is genuine and made for `purpose`; `None` otherwise.
    pub fn verify(&self, token: &str, purpose: Purpose) -> Option<Claims> {
        let raw = B64.decode(token.trim()).ok()?;
        if raw.len() < 8 + 32 {
            return None;
        }
        let subscriber = i64::from_be_bytes(raw[..8].try_into().ok()?);
        let tag = &raw[8..40];
        let digest = std::str::from_utf8(&raw[40..]).ok()?;
        // Constant-time comparison of the full 256-bit tag.
        hmac::verify(&self.key, &message(subscriber, digest, purpose), tag).ok()?;
        Some(Claims {
            subscriber,
            digest: digest.to_owned(),
        })
    }
}

/// Bytes of the HMAC kept in a mailto tag: 80 bits, as 20 hex digits, so the address
/// stays under the 64-octet local-part limit and survives MTAs that lower-case it.
const MAIL_TAG_BYTES: usize = 10;

impl Signer {
    /// The tag for a subscriber's mailto unsubscribe address for one digest,
    /// `unsubscribe.<id>.<hex>`: lower-case letters, digits and dots only.
    pub fn mail_tag(&self, subscriber: i64, digest: &str) -> String {
        let tag = hmac::sign(
            &self.key,
            &message(subscriber, digest, Purpose::MailUnsubscribe),
        );
        let hex: String = tag.as_ref()[..MAIL_TAG_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("unsubscribe.{subscriber}.{hex}")
    }

    /// The subscriber and digest a mailto tag was made for, trying each digest (the
    /// address does not name it); `None` if the tag is not genuine.
    pub fn verify_mail_tag(&self, tag: &str, digests: &[&str]) -> Option<Claims> {
        let rest = tag.trim().to_ascii_lowercase();
        let rest = rest.strip_prefix("unsubscribe.")?;
        let (id, hex) = rest.split_once('.')?;
        let subscriber: i64 = id.parse().ok().filter(|n| *n > 0)?;
        if hex.len() != 2 * MAIL_TAG_BYTES || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        digests.iter().find_map(|digest| {
            let want = self.mail_tag(subscriber, digest);
            // Constant time over the whole tag: a difference anywhere costs the same.
            let same = want
                .bytes()
                .zip(tag.trim().to_ascii_lowercase().bytes())
                .fold(want.len() ^ tag.trim().len(), |acc, (a, b)| {
                    acc | usize::from(a ^ b)
                });
            (same == 0).then(|| Claims {
                subscriber,
                digest: (*digest).to_owned(),
            })
        })
    }
}

/// Makes the signed per-subscriber links of the web endpoint.
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
    signer: Arc<Signer>,
}

impl Links {
    /// Links under `base` (no trailing slash), signed by `signer`.
    pub fn new(base: &str, signer: Arc<Signer>) -> Links {
        Links {
            base: base.trim_end_matches('/').to_owned(),
            signer,
        }
    }

    /// Links for a configured `[web]` table (creating the secret file if needed).
    pub fn load(web: &WebSettings) -> Result<Links, TokenError> {
        Ok(Links::new(
            &web.base_url,
            Arc::new(Signer::from_source(&web.secret)?),
        ))
    }

    /// The signer behind the links.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The signer behind the links, shared.
    pub fn shared_signer(&self) -> Arc<Signer> {
        Arc::clone(&self.signer)
    }

    /// The endpoint's public address.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `…/unsubscribe/{token}`: one-click POST target and the page with the button.
    pub fn unsubscribe(&self, subscriber: i64, digest: &str) -> String {
        let t = self.signer.sign(subscriber, digest, Purpose::Unsubscribe);
        format!("{}/unsubscribe/{t}", self.base)
    }

    /// `…/preferences/{token}`: digests, time zone, leaving.
    pub fn preferences(&self, subscriber: i64, digest: &str) -> String {
        let t = self.signer.sign(subscriber, digest, Purpose::Preferences);
        format!("{}/preferences/{t}", self.base)
    }

    /// The "Follow the conversation" page of one essay for one reader.
    pub fn follow(&self, subscriber: i64, essay: i64) -> String {
        let t = self
            .signer
            .sign(subscriber, &format!("essay:{essay}"), Purpose::Follow);
        format!("{}/follow/{t}", self.base)
    }

    /// The "Stop following" page for one essay (the same token as [`Links::follow`]).
    pub fn unfollow(&self, subscriber: i64, essay: i64) -> String {
        let t = self
            .signer
            .sign(subscriber, &format!("essay:{essay}"), Purpose::Follow);
        format!("{}/unfollow/{t}", self.base)
    }

    /// `…/confirm/{token}` for a sign-up.
    pub fn confirm(&self, signup: i64) -> String {
        let t = self.signer.sign(signup, "", Purpose::Confirm);
        format!("{}/confirm/{t}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn a_token_verifies_for_its_own_subscriber_digest_and_purpose() {
        let s = signer();
        let t = s.sign(42, "essays", Purpose::Unsubscribe);
        assert_eq!(
            s.verify(&t, Purpose::Unsubscribe),
            Some(Claims {
                subscriber: 42,
                digest: "essays".into()
            })
        );
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn a_mail_tag_names_its_reader_and_digest_and_cannot_be_forged() {
        let s = signer();
        let tag = s.mail_tag(42, "replies");
        assert!(tag.starts_with("unsubscribe.42."), "{tag}");
        assert!(tag.len() <= 40, "{tag}");
        assert!(tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.'));
        let digests = ["essays", "replies"];
        assert_eq!(
            s.verify_mail_tag(&tag, &digests),
            Some(Claims {
                subscriber: 42,
                digest: "replies".into()
            })
        );
        // An MTA that upper-cases the local part does not break it.
        assert!(s
            .verify_mail_tag(&tag.to_ascii_uppercase(), &digests)
            .is_some());
        // Another reader's id with this MAC, a changed digit, a cut tag, another key.
        assert_eq!(
            s.verify_mail_tag(&tag.replace(".42.", ".43."), &digests),
            None
        );
        let mut bent = tag.clone().into_bytes();
        let last = bent.len() - 1;
        bent[last] = if bent[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            s.verify_mail_tag(&String::from_utf8(bent).unwrap(), &digests),
            None
        );
        assert_eq!(s.verify_mail_tag(&tag[..tag.len() - 2], &digests), None);
        assert_eq!(s.verify_mail_tag(&tag, &["essays"]), None);
        let other = Signer::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify_mail_tag(&tag, &digests), None);
    }

    #[test]
    fn forged_truncated_moved_or_repurposed_tokens_fail() {
        let s = signer();
        let t = s.sign(42, "essays", Purpose::Unsubscribe);
        assert_eq!(s.verify(&t, Purpose::Confirm), None, "another purpose");
        assert_eq!(
            s.verify(&t[..t.len() - 2], Purpose::Unsubscribe),
            None,
            "truncated"
        );
        let mut raw = B64.decode(&t).unwrap();
        raw[7] ^= 1; // subscriber 42 -> 43
        assert_eq!(
            s.verify(&B64.encode(&raw), Purpose::Unsubscribe),
            None,
            "other subscriber"
        );
        let mut raw = B64.decode(&t).unwrap();
        raw[20] ^= 0x80; // a bit of the tag
        assert_eq!(
            s.verify(&B64.encode(&raw), Purpose::Unsubscribe),
            None,
            "forged tag"
        );
        let other = Signer::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&t, Purpose::Unsubscribe), None, "other secret");
        assert_eq!(s.verify("", Purpose::Unsubscribe), None);
        assert_eq!(s.verify("not base64 !", Purpose::Unsubscribe), None);
    }

    #[test]
    fn the_secret_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.secret");
        let a = Signer::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let b = Signer::load_or_create(&path).unwrap();
        let t = a.sign(1, "d", Purpose::Confirm);
        assert!(
            b.verify(&t, Purpose::Confirm).is_some(),
            "the same secret was loaded"
        );
        assert!(format!("{a:?}").contains("redacted"));
        assert!(matches!(Signer::new(b"short"), Err(TokenError::Short)));
    }
}
