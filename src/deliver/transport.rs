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
    Smtp(Arc<SmtpPool>, std::time::Duration),
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
}

/// Classifies a lettre SMTP error the way RFC 5321 does: 5xx is permanent, everything
/// else (4xx, timeouts, resets, a connection closed mid-transaction) is transient.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let reason = crate::error_chain(e);
    let permanent = e.is_permanent() || e.is_client();
    // Enhanced status 5.1.x (RFC 3463): bad destination mailbox address.
    let bounce = e.is_permanent() && is_bad_mailbox(&reason);
    SendError::Smtp {
        reason,
        transient: !permanent,
        bounce,
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
                Ok(Transport::Smtp(Arc::new(pool), s.timeout))
            }
        }
    }

    /// Hands one message over; returns the server's reply or where it went.
    pub async fn send(&self, msg: &Outgoing) -> Result<String, SendError> {
        match self {
            Transport::Smtp(pool, limit) => {
                // Bound the whole transaction: a server that stops answering mid-way
                // must not hang the send.
                tokio::time::timeout(
                    *limit,
                    pool.send(&msg.envelope_from, &msg.envelope_to, &msg.raw),
                )
                .await
                .map_err(|_| SendError::Smtp {
                    reason: format!(
                        "the server did not finish the transaction within {limit:?} (timed out)"
                    ),
                    transient: true,
                    bounce: false,
                })?
                .map_err(|e| classify(&e))
            }
            Transport::Outbox(dir) => {
                let path = dir.join(format!("{}.eml", msg.file_stem));
                write_atomically(dir, &path, &msg.raw).await?;
                Ok(format!("written to {}", path.display()))
            }
            Transport::Preview(dir) => {
                let base = dir.join(&msg.file_stem);
                for (ext, bytes) in [
                    ("eml", msg.raw.as_slice()),
                    ("html", msg.html.as_bytes()),
                    ("txt", msg.text.as_bytes()),
                ] {
                    let path = base.with_extension(ext);
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
async fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), SendError> {
    let err = |source: std::io::Error| SendError::Write {
        path: path.to_owned(),
        reason: source.to_string(),
        transient: !matches!(
            source.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidInput
        ),
    };
    tokio::fs::create_dir_all(dir).await.map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = async {
        use tokio::io::AsyncWriteExt;
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(bytes).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, path).await
    };
    file.await.map_err(err)
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
