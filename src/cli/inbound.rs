//! `gazette inbound`: reads mail that came back (one message on stdin, or a Maildir's
//! new messages) and records it; see [`crate::inbound`].

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{count, print_line, EXIT_OK, EXIT_TEMPFAIL};
use crate::config::Config;
use crate::inbound::{self, maildir, Kind, Outcome};
use crate::store::Store;
use crate::token::Signer;

/// Options of `gazette inbound`.
#[derive(Debug, Args)]
pub struct InboundArgs {
    /// Read every message in this Maildir's new/ folder instead of one on stdin; each
    /// one recorded moves to cur/ (flagged seen if Gazette knew it, unflagged if not).
    #[arg(long, value_name = "DIR")]
    pub maildir: Option<PathBuf>,
    /// The address the message on stdin was delivered to, if the MTA passes it (Postfix
    /// pipe: `${original_recipient}`); X-Original-To, Delivered-To and To are read too.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "maildir")]
    pub recipient: Option<String>,
    /// Print one JSON object per message on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `gazette inbound`.
pub(super) fn inbound(config: &Config, args: &InboundArgs, say: impl Fn(String)) -> u8 {
    match run(config, args, &say) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}; nothing was lost: the message is kept (exit {EXIT_TEMPFAIL}, so an MTA retries)");
            EXIT_TEMPFAIL
        }
    }
}

fn run(config: &Config, args: &InboundArgs, say: &dyn Fn(String)) -> anyhow::Result<u8> {
    let signer = Signer::from_source(&config.token_secret())?;
    let mut store = Store::connect(&config.state)?;
    let mut outcomes: Vec<Outcome> = Vec::new();
    let report = |name: &str, o: &Outcome| {
        log(name, o);
        if args.json {
            let mut v = serde_json::to_value(o).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("message".into(), name.into());
            }
            print_line(&v.to_string());
        }
    };
    match &args.maildir {
        None => {
            use std::io::IsTerminal as _;
            if std::io::stdin().is_terminal() {
                eprintln!("Reading one message from stdin (end it with Ctrl-D); for a Maildir use --maildir DIR.");
            }
            let mut raw = Vec::new();
            std::io::stdin()
                .lock()
                .take(inbound::report::MAX_MESSAGE as u64 + 1)
                .read_to_end(&mut raw)?;
            let o = inbound::settle(
                &mut store,
                config,
                &signer,
                &raw,
                args.recipient.as_deref(),
                crate::time::now(),
            )?;
            report("stdin", &o);
            outcomes.push(o);
        }
        Some(dir) => {
            let waiting = maildir::waiting(dir)?;
            for path in &waiting {
                let name = file_name(path);
                let raw = maildir::read_bounded(path)?;
                let o = match inbound::settle(
                    &mut store,
                    config,
                    &signer,
                    &raw,
                    None,
                    crate::time::now(),
                ) {
                    Ok(o) => o,
                    Err(e) => {
                        summary(&outcomes, args.json, say);
                        anyhow::bail!(
                            "cannot record {}: {e}; it and the {} after it stay in new/",
                            path.display(),
                            waiting.len() - outcomes.len() - 1
                        );
                    }
                };
                maildir::file_away(dir, path, o.kind.recognised())?;
                report(&name, &o);
                outcomes.push(o);
            }
        }
    }
    summary(&outcomes, args.json, say);
    Ok(EXIT_OK)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One log line per message: what it was, whom it concerned, what changed.
fn log(name: &str, o: &Outcome) {
    let who = o.email.as_deref().unwrap_or("-");
    let digest = o.digest.as_deref().unwrap_or("-");
    let what = match (o.kind, o.changed) {
        (Kind::Bounce, true) => "marked bounced",
        (Kind::SoftBounce, true) => "marked bounced (too many temporary failures)",
        (Kind::SoftBounce, false) => "temporary failure counted",
        (Kind::Complaint, true) => "unsubscribed as complained",
        (Kind::Unsubscribe, true) => "left the digest",
        (Kind::Duplicate, _) => "read before; nothing changed",
        (_, true) => "changed",
        (_, false) => "nothing changed",
    };
    tracing::info!(
        message = name,
        kind = o.kind.as_str(),
        subscriber = who,
        digest,
        detail = o.detail.as_str(),
        "inbound {}: {} for {who} ({digest}): {}; {what}",
        name,
        o.kind.as_str(),
        o.detail
    );
}

/// "Read 4 messages: 1 bounce, 1 complaint, …; 2 readers changed."
fn summary(outcomes: &[Outcome], json: bool, say: &dyn Fn(String)) {
    if json {
        return;
    }
    let mut by: std::collections::BTreeMap<Kind, usize> = Default::default();
    for o in outcomes {
        *by.entry(o.kind).or_default() += 1;
    }
    let words = |k: Kind, n: usize| match k {
        Kind::Bounce => count(n, "bounce", "bounces"),
        Kind::SoftBounce => count(n, "temporary failure", "temporary failures"),
        Kind::Complaint => count(n, "complaint", "complaints"),
        Kind::Unsubscribe => count(n, "unsubscribe request", "unsubscribe requests"),
        Kind::Forged => format!("{n} forged"),
        Kind::Unmatched => format!("{n} unmatched"),
        Kind::Other => format!("{n} other"),
        Kind::Duplicate => format!("{n} read before"),
    };
    let parts: Vec<String> = by.iter().map(|(k, n)| words(*k, *n)).collect();
    let changed = outcomes.iter().filter(|o| o.changed).count();
    say(format!(
        "Read {}{}{}; {} changed.",
        count(outcomes.len(), "message", "messages"),
        if parts.is_empty() { "" } else { ": " },
        parts.join(", "),
        count(changed, "reader", "readers"),
    ));
}
