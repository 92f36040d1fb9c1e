//! Gathering: every source fetched (a few at once, each bounded by its budget) and what
//! it found stored, one source's failure never stopping the others.

use super::*;

/// How many sources are fetched at once (the per-host limit applies inside this).
const GATHER_CONCURRENCY: usize = 8;

/// Gathers every source into the store; a failing source is reported and the others go on.
pub async fn gather(
    config: &Config,
    store: &mut Store,
    now: DateTime<Utc>,
) -> Result<Vec<GatherOutcome>, PipelineError> {
    gather_some(config, store, &|_| true, now).await
}

/// Gathers the sources whose names `wanted` accepts, like [`gather`].
pub async fn gather_some(
    config: &Config,
    store: &mut Store,
    wanted: &dyn Fn(&str) -> bool,
    now: DateTime<Utc>,
) -> Result<Vec<GatherOutcome>, PipelineError> {
    let http = Arc::new(HttpClient::new(config.http.clone(), &config.site.base_url)?);
    let permits = Arc::new(Semaphore::new(GATHER_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for (i, src) in config.sources.iter().enumerate() {
        if !wanted(src.name()) {
            continue;
        }
        // A WordPress source re-lists the comments of its recheck window: it must know
        // which of them it already has.
        let recent = match src {
            SourceConfig::WordPress(w) => w.recheck_window + chrono::Duration::days(1),
            _ => chrono::Duration::zero(),
        };
        let memory = store.source_memory(src.name(), now, recent)?;
        let mut ctx = GatherContext {
            http: source::Fetcher::new(http.clone(), src),
            cache: memory.validators,
            comment_feeds: memory.comment_feeds,
            known_essays: memory.essays,
            since: memory.last_ok_at,
            origins: memory.origins,
            api_root: memory.api_root,
            now,
            unplaced: memory.unplaced,
        };
        let src = src.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            ctx.http.start();
            (i, source::gather(&src, &ctx).await)
        });
    }
    let mut results: Vec<(usize, Result<source::Gathered, String>)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, r)) => results.push((i, r.map_err(|e| e.to_string()))),
            Err(e) => tracing::error!(error = %e, "A gather task stopped unexpectedly."),
        }
    }
    results.sort_by_key(|(i, _)| *i);
    let mut out = Vec::new();
    for (i, result) in results {
        let name = config.sources[i].name().to_owned();
        let result = match result {
            Ok(g) => {
                let max_new = match &config.sources[i] {
                    SourceConfig::Feed(f) => f.limits.max_new_items,
                    SourceConfig::WordPress(w) => w.limits.max_new_items,
                    SourceConfig::Folder(_) => usize::MAX,
                };
                let added = store.upsert_gathered_capped(&name, &g, now, max_new)?;
                if added.held > 0 {
                    tracing::warn!(source = %name, held = added.held, max_new_items = max_new,
                        "More new items than the source's `max_new_items`; the rest come with the next gathers.");
                }
                if let Some(route) = &g.route {
                    tracing::warn!(source = %name, route = %route, "Source gathered on its fallback route.");
                }
                tracing::info!(source = %name, essays = g.essays.len(), replies = g.replies.len(),
                    new_essays = added.essays, new_replies = added.replies, unplaced = added.unplaced, "Gathered source.");
                Ok(added)
            }
            Err(message) => {
                store.record_source_failure(&name, now, &message)?;
                tracing::error!(source = %name, error = %message, "Gathering failed; its items will come in a later edition.");
                Err(message)
            }
        };
        out.push(GatherOutcome {
            source: name,
            result,
        });
    }
    Ok(out)
}
