//! What the public archive reads: a digest's editions, newest first.

use super::db::{params, OptionalExtension};

use super::{edition_from_raw, edition_raw, EditionRow, Result, Store, EDITION_SELECT};

impl Store {
    /// A digest's editions that delivered at least one copy, newest first (an edition
    /// every copy of which was suppressed or failed was never read by anyone).
    pub fn archived_editions(&self, digest: &str) -> Result<Vec<EditionRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{EDITION_SELECT} WHERE digest = ?1 AND EXISTS (SELECT 1 FROM delivery d
               WHERE d.edition_id = edition.id AND d.status = 'sent')
             ORDER BY number DESC"
        ))?;
        let rows = stmt.query_map([digest], edition_raw)?;
        rows.map(|r| edition_from_raw(r?)).collect()
    }

    /// Edition `number` of a digest, if it delivered at least one copy.
    pub fn archived_edition(&self, digest: &str, number: i64) -> Result<Option<EditionRow>> {
        let raw = self
            .conn
            .query_row(
                &format!(
                    "{EDITION_SELECT} WHERE digest = ?1 AND number = ?2 AND EXISTS (SELECT 1 FROM delivery d
                       WHERE d.edition_id = edition.id AND d.status = 'sent')"
                ),
                params![digest, number],
                edition_raw,
            )
            .optional()?;
        raw.map(edition_from_raw).transpose()
    }
}
