//! `gazette inbound --maildir DIR`: every message in `DIR/new`, oldest name first; each
//! one recorded is moved to `cur/`, flagged seen (`:2,S`) when Gazette acted on it or
//! knew it, unflagged (`:2,`) when it was something else, so a person reading the
//! mailbox still finds it unread. A message that could not be recorded stays in `new/`
//! for the next run.

use std::path::{Path, PathBuf};

use super::report::MAX_MESSAGE;

/// The Maildir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    /// `new/` or `cur/` is missing.
    #[error(
        "{dir} is not a Maildir: it has no {missing}/ folder (a Maildir holds new/, cur/ and tmp/)"
    )]
    NotMaildir {
        /// The folder given.
        dir: PathBuf,
        /// The missing subfolder.
        missing: &'static str,
    },
    /// Listing, reading or moving a file failed.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The messages waiting in `dir/new`, oldest name first (Maildir names begin with the
/// delivery time).
pub fn waiting(dir: &Path) -> Result<Vec<PathBuf>, MaildirError> {
    for missing in ["new", "cur"] {
        if !dir.join(missing).is_dir() {
            return Err(MaildirError::NotMaildir {
                dir: dir.to_owned(),
                missing,
            });
        }
    }
    let new = dir.join("new");
    let entries = std::fs::read_dir(&new).map_err(|source| MaildirError::Io {
        what: "list",
        path: new.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Reads at most [`MAX_MESSAGE`] + 1 bytes of a message (enough to know it is too big).
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, MaildirError> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(|source| MaildirError::Io {
        what: "read",
        path: path.to_owned(),
        source,
    })?;
    let mut buf = Vec::new();
    f.take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|source| MaildirError::Io {
            what: "read",
            path: path.to_owned(),
            source,
        })?;
    Ok(buf)
}

/// Moves a message from `new/` to `cur/`, seen or not.
pub fn file_away(dir: &Path, path: &Path, seen: bool) -> Result<(), MaildirError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name.split_once(':').map_or(name.as_str(), |(b, _)| b);
    let to = dir
        .join("cur")
        .join(format!("{base}:2,{}", if seen { "S" } else { "" }));
    std::fs::rename(path, &to).map_err(|source| MaildirError::Io {
        what: "move",
        path: path.to_owned(),
        source,
    })
}
