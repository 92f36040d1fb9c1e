//! `gazette follows`: which essays readers follow, for `replies = "followed"` digests.

use clap::Subcommand;

use super::{print_line, EXIT_ERROR, EXIT_OK};
use crate::config::{self, Config};
use crate::store::Store;

/// `gazette follows …`.
#[derive(Debug, Subcommand)]
pub enum FollowsCmd {
    /// The essays each reader follows (or one reader's).
    List {
        /// Only this reader.
        email: Option<String>,
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a reader follow an essay (named by its URL or its key, as `status` shows).
    Add {
        /// The reader's address.
        email: String,
        /// The essay's URL or key.
        essay: String,
    },
    /// Stop a reader following an essay.
    Remove {
        /// The reader's address.
        email: String,
        /// The essay's URL or key.
        essay: String,
    },
}

/// Finds the reader and the essay a command names, or says which is missing.
fn resolve(
    store: &Store,
    email: &str,
    essay: &str,
) -> anyhow::Result<Result<(i64, i64, String, String), String>> {
    let address = match config::parse_address(email) {
        Ok(a) => a.to_string(),
        Err(e) => {
            return Ok(Err(format!(
                "{email:?} is not a valid e-mail address ({e})"
            )))
        }
    };
    let Some(sub) = store.subscriber_id(&address)? else {
        return Ok(Err(format!(
            "{address} is not a subscriber (see `gazette subscribers list`)"
        )));
    };
    let Some(e) = store.essay_by_ref(essay)? else {
        return Ok(Err(format!(
            "no stored essay has the URL or key {essay:?}; gather first, or copy it from `gazette follows list` or the essay's page"
        )));
    };
    // As stored (an address's local part keeps the case it was first written in).
    let address = store.profile(sub)?.map_or(address, |p| p.email);
    Ok(Ok((sub, e.id, address, e.title)))
}

/// Runs `gazette follows …`.
pub(super) fn follows(
    config: &Config,
    action: &FollowsCmd,
    say: impl Fn(String),
) -> anyhow::Result<u8> {
    let mut store = Store::connect(&config.state)?;
    let now = crate::time::now();
    store.sync_subscribers(&config.subscribers, now)?;
    match action {
        FollowsCmd::List { email, json } => {
            let mut all = store.all_follows()?;
            if let Some(e) = email {
                let address = match config::parse_address(e) {
                    Ok(a) => a.to_string(),
                    Err(err) => {
                        eprintln!("error: {e:?} is not a valid e-mail address ({err})");
                        return Ok(EXIT_ERROR);
                    }
                };
                all.retain(|(who, _)| who.eq_ignore_ascii_case(&address));
            }
            if *json {
                let rows: Vec<serde_json::Value> = all
                    .iter()
                    .map(|(who, f)| {
                        serde_json::json!({
                            "email": who, "essay": f.key, "source": f.source,
                            "title": f.title, "url": f.url, "since": f.since,
                        })
                    })
                    .collect();
                print_line(&serde_json::to_string_pretty(&rows)?);
                return Ok(EXIT_OK);
            }
            for (who, f) in &all {
                say(format!(
                    "{who:<40} {}  <{}>",
                    f.title,
                    f.url.as_deref().unwrap_or(&f.key)
                ));
            }
            let readers: std::collections::BTreeSet<&str> =
                all.iter().map(|(w, _)| w.as_str()).collect();
            say(format!(
                "{} by {}.",
                super::count(all.len(), "follow", "follows"),
                super::count(readers.len(), "reader", "readers")
            ));
            Ok(EXIT_OK)
        }
        FollowsCmd::Add { email, essay } | FollowsCmd::Remove { email, essay } => {
            let (sub, id, address, title) = match resolve(&store, email, essay)? {
                Ok(found) => found,
                Err(message) => {
                    eprintln!("error: {message}");
                    return Ok(EXIT_ERROR);
                }
            };
            if matches!(action, FollowsCmd::Add { .. }) {
                if store.follow(sub, id, now)? {
                    say(format!("{address} now follows “{title}”."));
                } else {
                    say(format!(
                        "{address} already follows “{title}”; nothing changed."
                    ));
                }
            } else if store.unfollow(sub, id)? {
                say(format!("{address} no longer follows “{title}”."));
            } else {
                say(format!(
                    "{address} did not follow “{title}”; nothing changed."
                ));
            }
            Ok(EXIT_OK)
        }
    }
}
