//! Where messages go: an SMTP relay through lettre's pooled async transport, the outbox
//! (one .eml per message), a preview folder (.eml, .html, .txt), or nowhere (dry run).

use std::path::{Path, PathBuf};

use std::sync::Arc;

use super::message::Outgoing;
use super::smtp::SmtpPool;
use crate::config::TransportConfig;

/// A destination for finished messages.
#[derive(Clone)]
pub enum Transport {
    /// An SMTP relay, and the most one transaction may take.
    Smtp(Arc<SmtpPool>),
    /// One `<digest>-<edition>-<hash>.eml` per message in a directory.
    Outbox(PathBuf),
    /// The .eml plus `.html` and `.txt` parts, for inspection.
    Preview(PathBuf),
    /// Accepts everything and writes nothing.
    DryRun,
}

/// A message could not be handed over.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Writing a file failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
        /// Worth retrying (a full disk may be cleared; permissions will not fix themselves).
        transient: bool,
    },
    /// The SMTP server refused the message or the connection failed.
    #[error("{reason}")]
    Smtp {
        /// What happened, with the server's reply when there was one.
        reason: String,
        /// A 4xx reply, a timeout or a dropped connection: retry later.
        transient: bool,
        /// A 5.1.x "bad destination mailbox" reply: the address does not exist.
        bounce: bool,
        /// The relay itself failed (no connection, TLS, 421, a stall), whoever the
        /// recipient: the edition pauses instead of spending this message's attempts.
        relay: bool,
    },
    /// The SMTP transport could not be set up.
    #[error("cannot set up SMTP to {host}: {reason}")]
    Setup {
        /// The relay.
        host: String,
        /// Why.
        reason: String,
    },
}

impl SendError {
    /// Worth retrying later.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Write { transient, .. } | SendError::Smtp { transient, .. } => *transient,
            SendError::Setup { .. } => false,
        }
    }

    /// The recipient address does not exist (RFC 3463 5.1.x).
    pub fn is_bounce(&self) -> bool {
        matches!(self, SendError::Smtp { bounce: true, .. })
    }

    /// The failure is the transport's, not this message's: a relay that cannot be
    /// reached, fails TLS, answers 421 or stalls, or an outbox that cannot be written
    /// (a full disk). Every other message would fail the same way now.
    pub fn is_relay_level(&self) -> bool {
        match self {
            SendError::Write { .. } | SendError::Setup { .. } => true,
            SendError::Smtp { relay, .. } => *relay,
        }
    }
}

/// Classifies a lettre SMTP error the way RFC 5321 does: 5xx is permanent, everything
/// else (4xx, timeouts, resets, a connection closed mid-transaction) is transient.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let reason = crate::error_chain(e);
    let permanent = e.is_permanent() || e.is_client();
    // Enhanced status 5.1.x (RFC 3463): bad destination mailbox address.
    let bounce = e.is_permanent() && is_bad_mailbox(&reason);
    // No session at all (lettre's connection errors: refused, unreachable, greeting
    // lost), TLS failing, or 421 "service not available": the relay's trouble.
    let no_session = !e.is_response()
        && !e.is_transient()
        && !e.is_permanent()
        && !e.is_client()
        && reason.starts_with("Connection error");
    let relay = no_session || e.is_tls() || e.status().is_some_and(|c| c.to_string() == "421");
    SendError::Smtp {
        reason,
        transient: !permanent,
        bounce,
        relay,
    }
}

/// Whether a reply carries enhanced status 5.1.x (RFC 3463): bad destination mailbox.
fn is_bad_mailbox(text: &str) -> bool {
    text.match_indices("5.1.").any(|(i, _)| {
        text[i + 4..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
            && (i == 0 || !text[..i].ends_with(|c: char| c.is_ascii_digit() || c == '.'))
    })
}

impl Transport {
    /// Builds the configured transport; SMTP connections open on first use.
    pub fn from_config(config: &TransportConfig) -> Result<Transport, SendError> {
        match config {
            TransportConfig::Outbox { dir } => Ok(Transport::Outbox(dir.clone())),
            TransportConfig::Smtp(s) => {
                // rustls is built without a bundled provider; ring needs no extra toolchain.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let pool = SmtpPool::new(s).map_err(|reason| SendError::Setup {
                    host: s.host.clone(),
                    reason,
                })?;
                Ok(Transport::Smtp(Arc::new(pool)))
            }
        }
    }

    /// Hands one message over; returns the server's reply or where it went.
    pub async fn send(&self, msg: &Outgoing) -> Result<String, SendError> {
        match self {
            Transport::Smtp(pool) => pool
                .send(&msg.envelope_from, &msg.envelope_to, &msg.raw)
                .await
                .map_err(|f| match f {
                    super::smtp::SmtpFailure::Smtp(e) => classify(&e),
                    super::smtp::SmtpFailure::Session(e) => match classify(&e) {
                        SendError::Smtp {
                            reason, transient, ..
                        } => SendError::Smtp {
                            reason,
                            transient,
                            bounce: false,
                            relay: true,
                        },
                        other => other,
                    },
                    super::smtp::SmtpFailure::Timeout { phase, after } => SendError::Smtp {
                        reason: format!(
                            "the relay did not send {phase} within {} (timed out)",
                            humantime::format_duration(after)
                        ),
                        transient: true,
                        bounce: false,
                        // A relay that stops answering would cost one timeout per
                        // message: the edition pauses instead.
                        relay: true,
                    },
                }),
            Transport::Outbox(dir) => {
                let path = dir.join(format!("{}.eml", msg.file_stem));
                write_atomically(dir, &path, &msg.raw).await?;
                Ok(format!("written to {}", path.display()))
            }
            Transport::Preview(dir) => {
                // Named for the reader, not the hash: `essays-0003-ada@example.org.html`.
                let edition = msg
                    .file_stem
                    .rsplit_once('-')
                    .map_or(msg.file_stem.as_str(), |(e, _)| e);
                let reader: String = msg
                    .envelope_to
                    .to_string()
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "@._+-".contains(c) {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let stem = format!("{edition}-{reader}");
                let base = dir.join(&stem);
                for (ext, bytes) in [
                    ("eml", msg.raw.as_slice()),
                    ("html", msg.html.as_bytes()),
                    ("txt", msg.text.as_bytes()),
                ] {
                    // Not with_extension: the address's ".org" is no extension.
                    let path = dir.join(format!("{stem}.{ext}"));
                    write_atomically(dir, &path, bytes).await?;
                }
                Ok(format!("previewed as {}.*", base.display()))
            }
            Transport::DryRun => Ok("dry run".into()),
        }
    }
}

/// Writes through a temporary file and a rename, so a crash never leaves half a message
/// where a reader (or a relay picking up the outbox) would take it for a whole one.
/// Plain blocking writes on the blocking pool: each one reports its own error (tokio's
/// buffered file reported a failed write only on a later call, and a full disk went
/// unseen), then the file and the folder are synced.
async fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), SendError> {
    let (dir, path, bytes) = (dir.to_owned(), path.to_owned(), bytes.to_owned());
    let target = path.clone();
    tokio::task::spawn_blocking(move || write_blocking(&dir, &path, &bytes))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
        .map_err(|source| SendError::Write {
            reason: io_reason(&source),
            path: target,
            transient: !matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidInput
            ),
        })
}

fn write_blocking(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.flush()?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the folder is.
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        // Never leave a cut temporary file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The plain cause of an I/O error, as an operator would say it.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull => "the disk is full (no space left on device)".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".into(),
        std::io::ErrorKind::FileTooLarge => "the file is larger than the system allows".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounces_are_5_1_x_only() {
        let is_bounce = is_bad_mailbox;
        assert!(is_bounce(
            "permanent error (550): 5.1.1 <x@y>: Recipient address rejected"
        ));
        assert!(!is_bounce(
            "permanent error (554): 5.7.1 Relay access denied"
        ));
        assert!(!is_bounce("permanent error (552): 15.1.1 odd"));
    }
}
