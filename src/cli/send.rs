//! `gazette send`: the run, its signals, its progress bar and the summary it prints.

use super::*;

/// Runs `gazette send` with its options and returns the exit code; SIGINT and SIGTERM
/// stop it the way they stop the daemon.
pub(super) async fn send(
    config: &Config,
    args: &SendArgs,
    quiet: bool,
    say: impl Fn(String),
) -> anyhow::Result<u8> {
    let mode = if args.dry_run {
        Mode::DryRun
    } else if let Some(dir) = &args.preview {
        Mode::Preview(dir.clone())
    } else if let Some(to) = &args.to {
        match config::parse_address(to) {
            Ok(a) => Mode::TestTo(a),
            Err(e) => {
                eprintln!("error: --to {to:?} is not a valid e-mail address ({e})");
                return Ok(EXIT_ERROR);
            }
        }
    } else {
        Mode::Deliver
    };
    let started = std::time::Instant::now();
    // SIGINT (Ctrl-C) and SIGTERM (a service manager) stop a send the way they stop the
    // daemon: nothing new is claimed, messages in flight get `daemon.shutdown_grace` to
    // finish, and what is left stays owed for the next `send`.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signal_name = Arc::new(Mutex::new(None::<&'static str>));
    let watcher = {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let grace = config.daemon.shutdown_grace;
        let name = Arc::clone(&signal_name);
        tokio::spawn(async move {
            let got = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if let Ok(mut n) = name.lock() {
                *n = Some(got);
            }
            eprintln!(
                "Stopping on {got}: no new messages; those in flight get up to {} to finish, the rest wait for the next `gazette send`.",
                humantime::format_duration(grace)
            );
            let _ = stop_tx.send(true);
        })
    };
    let report = pipeline::send(
        config,
        &SendOptions {
            digest: args.digest.clone(),
            resume_only: args.resume,
            stop: StopSignal::new(stop_rx, config.daemon.shutdown_grace),
            only: args.subscriber.clone(),
            ..SendOptions::new(mode.clone(), Arc::new(Bar::new(quiet)))
        },
    )
    .await;
    watcher.abort();
    let report = report?;
    print_report(&report, &mode, &say);
    let stopped_by = signal_name.lock().ok().and_then(|n| *n);
    if let Some(name) = stopped_by {
        let owed: usize = report
            .digests
            .iter()
            .map(|d| match d {
                DigestOutcome::Delivered { tally, .. } => tally.deferred,
                _ => 0,
            })
            .sum();
        eprintln!(
            "Stopped on {name}; messages not sent are still owed{}: `gazette send` continues.",
            if owed > 0 {
                format!(" ({owed} deferred)")
            } else {
                String::new()
            }
        );
        // 128 + the signal's number, as shells report a command a signal stopped.
        return Ok(if name == "SIGINT" {
            EXIT_SIGINT
        } else {
            EXIT_SIGTERM
        });
    }
    let sent: usize = report
        .digests
        .iter()
        .map(|d| match d {
            DigestOutcome::Delivered { tally, .. } => tally.sent,
            _ => 0,
        })
        .sum();
    if sent > 0 && matches!(mode, Mode::Deliver) {
        let secs = started.elapsed().as_secs_f64();
        say(format!(
            "Sent {} in {secs:.2} s ({:.0} messages/s).",
            count(sent, "message", "messages"),
            sent as f64 / secs.max(0.001)
        ));
    }
    Ok(if report.undelivered() > 0 {
        EXIT_UNDELIVERED
    } else if report.failed_sources() > 0 {
        EXIT_PARTIAL
    } else {
        EXIT_OK
    })
}

fn print_report(report: &SendReport, mode: &Mode, say: &impl Fn(String)) {
    for g in &report.gathered {
        match &g.result {
            Ok(a) => say(format!(
                "Gathered `{}`: {}.",
                g.source,
                gathered(a.essays as i64, a.replies as i64, a.unplaced as i64)
            )),
            Err(e) => eprintln!(
                "error: source `{}` failed, its items will come in a later edition: {e}",
                g.source
            ),
        }
    }
    let verb = match mode {
        Mode::Deliver => "sent",
        Mode::DryRun => "would send",
        Mode::Preview(_) => "previewed",
        Mode::TestTo(_) => "sent test copy",
    };
    for d in &report.digests {
        match d {
            DigestOutcome::NothingNew { digest, since } => say(format!(
                "Digest `{digest}`: nothing new since {}; no edition sent.",
                since.format("%Y-%m-%d %H:%M UTC")
            )),
            DigestOutcome::NoSubscribers { digest } => say(format!(
                "Digest `{digest}`: no active subscribers; no edition made (new items wait for the next one)."
            )),
            DigestOutcome::AlreadyCreated { digest } => say(format!(
                "Digest `{digest}`: another Gazette process created this edition first; skipped."
            )),
            DigestOutcome::Delivered { digest, edition, resumed, essays, replies, tally } => {
                let label = if *edition == 0 { "test copy".to_owned() } else { format!("edition #{edition}") };
                let mut line = format!(
                    "Digest `{digest}` {label}{}: {}, {}; {verb} {}",
                    if *resumed { " (resumed)" } else { "" },
                    count(*essays, "essay", "essays"),
                    count(*replies, "reply", "replies"),
                    tally.sent,
                );
                if let Mode::Preview(dir) = mode {
                    line.push_str(&format!(" into {}", dir.display()));
                }
                if tally.deferred > 0 {
                    line.push_str(&format!(", {} deferred", tally.deferred));
                }
                if !tally.failed.is_empty() {
                    line.push_str(&format!(", {} failed", tally.failed.len()));
                }
                if tally.bounced > 0 {
                    line.push_str(&format!(" ({} bounced)", tally.bounced));
                }
                if tally.suppressed > 0 {
                    line.push_str(&format!(", {} suppressed", tally.suppressed));
                }
                line.push('.');
                say(line);
                print_failures(&tally.failed);
                if let Some(why) = &tally.paused {
                    eprintln!(
                        "error: digest `{digest}` {label} paused: {why}. Nothing was marked failed; {} messages wait and go out with the next `gazette send` (or `gazette run`) once the transport works again.",
                        tally.deferred
                    );
                }
            }
        }
    }
    if matches!(mode, Mode::DryRun) {
        say("Dry run: nothing was recorded or written.".into());
    }
}

/// Delivery progress: a bar with rate and ETA on a terminal, otherwise a line on stderr
/// every ten seconds for long sends.
struct Bar {
    quiet: bool,
    terminal: bool,
    state: Mutex<BarState>,
}

#[derive(Default)]
struct BarState {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    total: usize,
    last_line: Option<Instant>,
    started: Option<Instant>,
}

impl Bar {
    fn new(quiet: bool) -> Bar {
        Bar {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            state: Mutex::new(BarState::default()),
        }
    }
}

impl Progress for Bar {
    fn start(&self, digest: &str, edition: i64, total: usize) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.label = format!("{digest} #{edition}");
        st.total = total;
        st.started = Some(Instant::now());
        st.last_line = Some(Instant::now());
        if self.terminal && !self.quiet {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(st.label.clone());
            st.bar = Some(bar);
        }
    }

    fn advance(&self, done: usize) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Some(bar) = &st.bar {
            bar.set_position(done as u64);
        } else if !self.quiet
            && st
                .last_line
                .is_some_and(|t| t.elapsed() >= Duration::from_secs(10))
        {
            let rate = done as f64
                / st.started
                    .map_or(1.0, |t| t.elapsed().as_secs_f64().max(0.001));
            eprintln!(
                "{}: {done}/{} messages settled ({rate:.0}/s)",
                st.label, st.total
            );
            st.last_line = Some(Instant::now());
        }
    }

    fn finish(&self) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Some(bar) = st.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The first few failed deliveries one by one, the rest counted by reason: 500
/// failures are a handful of lines, not 500.
fn print_failures(failed: &[(String, String)]) {
    const ONE_BY_ONE: usize = 5;
    for (to, why) in failed.iter().take(ONE_BY_ONE) {
        eprintln!("error: delivery to {to} failed: {why}");
    }
    if failed.len() > ONE_BY_ONE {
        let mut by_reason: std::collections::BTreeMap<String, usize> = Default::default();
        for (to, why) in &failed[ONE_BY_ONE..] {
            *by_reason
                .entry(why.replace(to.as_str(), "<address>"))
                .or_default() += 1;
        }
        eprintln!(
            "error: {} more deliveries failed (`gazette editions` and the ledger list them):",
            failed.len() - ONE_BY_ONE
        );
        for (why, n) in by_reason {
            eprintln!("  {n} × {why}");
        }
    }
}

/// "2 new essays, 1 new reply" and the unplaced note: what one gather brought.
pub(super) fn gathered(essays: i64, replies: i64, unplaced: i64) -> String {
    let n = |v: i64| usize::try_from(v).unwrap_or(0);
    format!(
        "{}, {}{}",
        count(n(essays), "new essay", "new essays"),
        count(n(replies), "new reply", "new replies"),
        unplaced_note(unplaced)
    )
}

/// ", N replies not placed yet" where a source holds replies waiting for their essay.
pub(super) fn unplaced_note(n: i64) -> String {
    match n {
        0 => String::new(),
        1 => ", 1 reply not placed yet (its essay is not known)".into(),
        n => format!(", {n} replies not placed yet (their essays are not known)"),
    }
}
