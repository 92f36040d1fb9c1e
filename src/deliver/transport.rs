//! Where messages go. The outbox writes one .eml per message; preview writes the .eml
//! with its HTML and text parts beside it; a dry run writes nothing.

use std::path::{Path, PathBuf};

use super::message::Outgoing;

/// A destination for finished messages.
#[derive(Debug, Clone)]
pub enum Transport {
    /// One `<digest>-<edition>-<hash>.eml` per message in a directory.
    Outbox(PathBuf),
    /// The .eml plus `.html` and `.txt` parts, for inspection.
    Preview(PathBuf),
    /// Accepts everything and writes nothing.
    DryRun,
}

/// A message could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl SendError {
    /// Worth retrying later (a full disk may be cleared; permissions will not fix themselves).
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Write { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidInput
            ),
        }
    }
}

impl Transport {
    /// Hands one message over; returns a short description of where it went.
    pub async fn send(&self, msg: &Outgoing) -> Result<String, SendError> {
        match self {
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
    let err = |source| SendError::Write {
        path: path.to_owned(),
        source,
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
