//! `gazette editions`: past editions with their delivery counts, as text or JSON.

use super::*;

/// Lists the newest `limit` editions (0: all), as text lines or one JSON list.
pub(super) fn editions(
    config: &Config,
    limit: usize,
    json: bool,
    say: impl Fn(String),
) -> anyhow::Result<u8> {
    if !config.state.exists() && json {
        print_line("[]");
        return Ok(EXIT_OK);
    }
    if !config.state.exists() {
        say(format!(
            "No editions yet ({} does not exist).",
            config.state_path.display()
        ));
        return Ok(EXIT_OK);
    }
    let store = Store::connect(&config.state)?;
    let editions = store.editions(if limit == 0 { usize::MAX } else { limit })?;
    if json {
        let ts = |t: chrono::DateTime<chrono::Utc>| crate::store::ts(t);
        let list: Vec<serde_json::Value> = editions
            .iter()
            .map(|e| {
                let deliveries: serde_json::Map<String, serde_json::Value> = e
                    .deliveries
                    .iter()
                    .map(|(s, n)| (s.clone(), (*n).into()))
                    .collect();
                serde_json::json!({
                    "digest": e.edition.digest,
                    "audience": e.edition.audience,
                    "number": e.edition.number,
                    "scheduled_for": ts(e.edition.scheduled_for),
                    "created_at": ts(e.edition.created_at),
                    "finished_at": e.edition.finished_at.map(ts),
                    "essays": e.essays,
                    "replies": e.replies,
                    "deliveries": deliveries,
                })
            })
            .collect();
        print_line(&serde_json::to_string_pretty(&list)?);
        return Ok(EXIT_OK);
    }
    if editions.is_empty() {
        say("No editions yet.".into());
    }
    for e in editions {
        let counts: Vec<String> = e
            .deliveries
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        say(format!(
            "{} #{:<3} {}  {}, {}  {}{}",
            e.edition.digest,
            e.edition.number,
            e.edition.created_at.format("%Y-%m-%d %H:%M UTC"),
            super::count(usize::try_from(e.essays).unwrap_or(0), "essay", "essays"),
            super::count(usize::try_from(e.replies).unwrap_or(0), "reply", "replies"),
            if counts.is_empty() {
                "no deliveries".into()
            } else {
                counts.join(", ")
            },
            if e.edition.finished_at.is_none() {
                "  (unfinished)"
            } else {
                ""
            },
        ));
    }
    Ok(EXIT_OK)
}
