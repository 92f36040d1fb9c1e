//! Sources fetch essays and replies from one configured place, normalise and sanitise
//! them, and return plain values. They never write the store or know about digests.

pub mod folder;
pub mod normalize;

use chrono::{DateTime, Utc};
use std::path::PathBuf;

use crate::config::SourceConfig;

/// One essay as a source saw it, already sanitised.
#[derive(Debug, Clone, PartialEq)]
pub struct Essay {
    /// Name of the source it came from.
    pub source: String,
    /// Stable identity within the source.
    pub key: String,
    /// Plain-text title.
    pub title: String,
    /// Plain-text author name.
    pub author: Option<String>,
    /// Public address.
    pub url: Option<String>,
    /// When the source says it was published.
    pub published_at: Option<DateTime<Utc>>,
    /// When the source says it was last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// Plain-text summary, if the source gives one.
    pub summary: Option<String>,
    /// Sanitised HTML body.
    pub content_html: String,
}

/// One reader reply as a source saw it, already sanitised.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Name of the source it came from.
    pub source: String,
    /// Stable identity within the source.
    pub key: String,
    /// Key of the essay it answers.
    pub essay_key: String,
    /// Key of the reply it answers, for threads.
    pub parent_key: Option<String>,
    /// Plain-text author name; `None` when the reader left none.
    pub author: Option<String>,
    /// Public address of the reply.
    pub url: Option<String>,
    /// When the source says it was written.
    pub published_at: Option<DateTime<Utc>>,
    /// Sanitised HTML body.
    pub content_html: String,
}

/// Everything one gather of one source produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gathered {
    /// Essays found.
    pub essays: Vec<Essay>,
    /// Replies found.
    pub replies: Vec<Reply>,
}

/// Why a source could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file's content is malformed.
    #[error("{path}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it and how to fix it.
        message: String,
    },
}

/// Gathers one source.
pub async fn gather(config: &SourceConfig) -> Result<Gathered, SourceError> {
    match config {
        SourceConfig::Folder(f) => {
            let f = f.clone();
            let path = f.path.clone();
            tokio::task::spawn_blocking(move || folder::gather(&f))
                .await
                .unwrap_or_else(|e| {
                    Err(SourceError::Malformed {
                        path,
                        message: format!("gathering stopped unexpectedly: {e}"),
                    })
                })
        }
    }
}
