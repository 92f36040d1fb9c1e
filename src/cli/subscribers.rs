//! `gazette subscribers`: the managed list beside config.toml (list, add, remove, CSV
//! import and export).

use super::*;

/// `gazette subscribers …`.
#[derive(Debug, Subcommand)]
pub enum SubscribersCmd {
    /// Every subscriber (config.toml and managed) with status, digests and origin.
    List {
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Add a subscriber, or update the name, zone and digests of an active one.
    /// An address that unsubscribed or bounced is refused: only its owner's
    /// confirmation may re-subscribe it.
    Add {
        /// The address (the domain is lower-cased, an international domain stored in punycode).
        email: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// IANA time zone, e.g. Europe/Berlin.
        #[arg(long)]
        timezone: Option<String>,
        /// A digest to receive (repeat for several; default: all).
        #[arg(long = "digest", value_name = "NAME")]
        digests: Vec<String>,
    },
    /// Unsubscribe an address: it is never mailed again, even if config.toml lists it.
    Remove {
        /// The address.
        email: String,
    },
    /// Add or update subscribers from a CSV file with a header row: email (required),
    /// name, timezone, digests (separated by ';'). Bad rows are reported by line number
    /// and skipped; the good ones are imported. Importing the same file again changes nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Write every subscriber as CSV to stdout (the import format, plus status and origin).
    Export,
}

/// `gazette subscribers …`.
pub(super) fn subscribers(
    config: &Config,
    action: &SubscribersCmd,
    say: impl Fn(String),
) -> anyhow::Result<u8> {
    use crate::store::Upserted;
    use crate::subscribers as subs;
    let mut store = Store::connect(&config.state)?;
    let now = crate::time::now();
    store.sync_subscribers(&config.subscribers, now)?;
    let known: Vec<String> = config.digests.iter().map(|d| d.name.clone()).collect();
    match action {
        SubscribersCmd::List { json } => {
            let all = store.list_subscribers()?;
            if *json {
                print_line(&serde_json::to_string_pretty(&all)?);
                return Ok(EXIT_OK);
            }
            for s in &all {
                say(format!(
                    "{:<40} {:<13} {:<8} {:<20} {}{}{}",
                    s.email,
                    s.status,
                    s.origin,
                    s.timezone.as_deref().unwrap_or("-"),
                    if s.digests.is_empty() {
                        "-".into()
                    } else {
                        s.digests.join(",")
                    },
                    s.name
                        .as_deref()
                        .map(|n| format!("  ({n})"))
                        .unwrap_or_default(),
                    s.reason
                        .as_deref()
                        .map(|r| format!("  [{r}]"))
                        .unwrap_or_default(),
                ));
            }
            let active = all.iter().filter(|s| s.status == "active").count();
            say(format!(
                "{}, {active} active.",
                super::count(all.len(), "subscriber", "subscribers")
            ));
            Ok(EXIT_OK)
        }
        SubscribersCmd::Add {
            email,
            name,
            timezone,
            digests,
        } => {
            let entry =
                match subs::entry(email, name.as_deref(), timezone.as_deref(), digests, &known) {
                    Ok(e) => e,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(EXIT_ERROR);
                    }
                };
            match store.upsert_subscriber(&entry, "cli", now)? {
                Upserted::Added => say(format!(
                    "Added {} ({}).",
                    entry.email,
                    entry.digests.join(", ")
                )),
                Upserted::Updated => say(format!(
                    "Updated {} ({}).",
                    entry.email,
                    entry.digests.join(", ")
                )),
                Upserted::Unchanged => say(format!(
                    "{} is already subscribed to {} with that name and zone; nothing changed.",
                    entry.email,
                    entry.digests.join(", ")
                )),
                Upserted::Suppressed { status } => {
                    eprintln!("error: {} is {status}; an address that left or bounced can only come back by confirming a new subscription itself", entry.email);
                    return Ok(EXIT_ERROR);
                }
            }
            Ok(EXIT_OK)
        }
        SubscribersCmd::Remove { email } => {
            let address = match config::parse_address(email) {
                Ok(a) => a.to_string(),
                Err(e) => {
                    eprintln!("error: {email:?} is not a valid e-mail address ({e})");
                    return Ok(EXIT_ERROR);
                }
            };
            match store.unsubscribe(&address, now)?.as_deref() {
                Some("active") => say(format!(
                    "Unsubscribed {address}; it will not be mailed again."
                )),
                Some(status) => say(format!("{address} is already {status}; nothing changed.")),
                None => {
                    eprintln!(
                        "error: {address} is not a subscriber (see `gazette subscribers list`)"
                    );
                    return Ok(EXIT_ERROR);
                }
            }
            Ok(EXIT_OK)
        }
        SubscribersCmd::Import { file } => {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return Ok(EXIT_ERROR);
                }
            };
            let (entries, bad) = subs::read_csv(&text, &known);
            // A fault in the header row (line 1) rejects the whole file: no row can be
            // read without it, so this is not "N bad rows".
            if bad.iter().any(|b| b.line == 1) {
                for b in &bad {
                    eprintln!("error: {}:{}: {}", file.display(), b.line, b.message);
                }
                eprintln!(
                    "error: {} was rejected: nothing was imported. Fix its header row (email,name,timezone,digests) and import it again.",
                    file.display()
                );
                return Ok(EXIT_ERROR);
            }
            for b in &bad {
                eprintln!("error: {}:{}: {}", file.display(), b.line, b.message);
            }
            let (mut added, mut updated, mut unchanged, mut suppressed) = (0, 0, 0, 0);
            for e in &entries {
                match store.upsert_subscriber(e, "cli", now)? {
                    Upserted::Added => added += 1,
                    Upserted::Updated => updated += 1,
                    Upserted::Unchanged => unchanged += 1,
                    Upserted::Suppressed { status } => {
                        suppressed += 1;
                        tracing::info!(email = %e.email, status = %status, "Not re-subscribed.");
                    }
                }
            }
            say(format!(
                "Imported {}: {added} added, {updated} updated, {unchanged} unchanged, {suppressed} left out (unsubscribed or bounced), {}.",
                file.display(),
                super::count(bad.len(), "bad row", "bad rows")
            ));
            Ok(if bad.is_empty() {
                EXIT_OK
            } else {
                EXIT_PARTIAL
            })
        }
        SubscribersCmd::Export => {
            print_line(subs::write_csv(&store.list_subscribers()?).trim_end());
            Ok(EXIT_OK)
        }
    }
}
