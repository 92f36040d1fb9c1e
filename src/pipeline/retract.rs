//! Retractions (ARCHITECTURE.md invariant 9): before an edition's items are frozen, each
//! WordPress source is asked which of them it still publishes.

use crate::config::{Config, SourceConfig};
use crate::edition::Selection;
use crate::source::{self, http::HttpClient};
use crate::store::Store;
use crate::time;

use super::PipelineError;

/// Asks each WordPress site whether the items about to be frozen into an edition are
/// still published; those it no longer shows (unpublished, trashed, spam, unapproved,
/// protected) are marked retracted and left out, with the replies under such essays.
/// A site that cannot be asked is logged and its items are sent as gathered.
pub(super) async fn drop_retracted(
    config: &Config,
    store: &mut Store,
    sel: &mut Selection,
) -> Result<(), PipelineError> {
    let id_of = |origin: &Option<String>, kind: &str| -> Option<u64> {
        origin.as_deref()?.strip_prefix(kind)?.parse().ok()
    };
    let mut gone_essays: Vec<i64> = Vec::new();
    let mut gone_replies: Vec<i64> = Vec::new();
    for src in &config.sources {
        let SourceConfig::WordPress(wp) = src else {
            continue;
        };
        let posts: Vec<(i64, u64)> = sel
            .essays
            .iter()
            .filter(|e| e.essay.source == wp.name)
            .filter_map(|e| Some((e.id, id_of(&e.essay.origin_id, "post:")?)))
            .collect();
        let comments: Vec<(i64, u64)> = sel
            .replies
            .iter()
            .filter(|r| r.reply.source == wp.name)
            .filter_map(|r| Some((r.id, id_of(&r.reply.origin_id, "comment:")?)))
            .collect();
        if posts.is_empty() && comments.is_empty() {
            continue;
        }
        // Only a source on its REST route can be asked; the feeds cannot tell.
        let Some(root) = store.source_api_root(&wp.name)? else {
            continue;
        };
        if store.source_route(&wp.name)?.is_some() {
            continue;
        }
        let client = HttpClient::new(config.http.clone(), &config.site.base_url)?;
        let http = source::Fetcher::new(
            std::sync::Arc::new(client),
            &crate::config::SourceConfig::WordPress(wp.clone()),
        );
        let ids = |v: &[(i64, u64)]| v.iter().map(|(_, id)| *id).collect::<Vec<_>>();
        match source::wordpress::retracted(wp, &http, &root, &ids(&posts), &ids(&comments)).await {
            Ok((p, c)) => {
                gone_essays.extend(
                    posts
                        .iter()
                        .filter(|(_, id)| p.contains(id))
                        .map(|(row, _)| *row),
                );
                gone_replies.extend(
                    comments
                        .iter()
                        .filter(|(_, id)| c.contains(id))
                        .map(|(row, _)| *row),
                );
            }
            Err(e) => {
                tracing::warn!(source = %wp.name, error = %e, "Could not check which items are still published; sending them as gathered.");
            }
        }
    }
    if gone_essays.is_empty() && gone_replies.is_empty() {
        return Ok(());
    }
    store.retract(&gone_essays, &gone_replies, time::now())?;
    let gone_keys: std::collections::HashSet<(String, String)> = sel
        .essays
        .iter()
        .filter(|e| gone_essays.contains(&e.id))
        .map(|e| (e.essay.source.clone(), e.essay.key.clone()))
        .collect();
    tracing::info!(
        essays = gone_essays.len(),
        replies = gone_replies.len(),
        "Left out items the site no longer publishes."
    );
    sel.essays.retain(|e| !gone_essays.contains(&e.id));
    sel.replies.retain(|r| {
        !gone_replies.contains(&r.id)
            && !gone_keys.contains(&(r.reply.source.clone(), r.reply.essay_key.clone()))
    });
    Ok(())
}
