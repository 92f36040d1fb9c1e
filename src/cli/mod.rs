//! The command line: parses arguments with clap, runs one command, prints what happened
//! and turns the outcome into an exit code scripts can trust:
//! 0 all done, 1 error (nothing or not everything could start), 2 a source failed (what
//! was gathered went out), 3 some messages were deferred or failed (kept in the ledger).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

mod check;
mod editions;
mod follows;
mod inbound;
mod init;
mod send;
mod store;
mod subscribers;

pub use subscribers::SubscribersCmd;

use crate::config::{self, Config};
use crate::deliver::StopSignal;
use crate::edition::{DigestView, EssayView, ReplyView, ThreadView};
use crate::pipeline::{self, DigestOutcome, Mode, Progress, SendOptions, SendReport};
use crate::render::{DigestInfo, EditionInfo, MessageContext, Renderer, SiteInfo, SubscriberInfo};
use crate::store::Store;

/// `n` with the noun that fits it: "1 source", "2 sources".
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error stopped the command.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: finished, but part of the input failed (a source, or rows of an import).
pub const EXIT_PARTIAL: u8 = 2;
/// Exit code: finished, but some messages were deferred or failed.
pub const EXIT_UNDELIVERED: u8 = 3;
/// Exit code: the command line itself was wrong (an unknown command or option, a
/// missing argument): EX_USAGE of sysexits.h, never 2, which means "part of the input
/// failed" here (clap's own default is 2).
pub const EXIT_USAGE: u8 = 64;
/// Exit code of `inbound` when a message could not be recorded (database or disk
/// trouble, a broken config): EX_TEMPFAIL, so an MTA that piped it keeps it queued and
/// tries again; from a Maildir it stays in new/.
pub const EXIT_TEMPFAIL: u8 = 75;
/// `send` stopped by SIGINT (Ctrl-C): 128 + 2, as shells report it.
pub const EXIT_SIGINT: u8 = 130;
/// `send` stopped by SIGTERM: 128 + 15.
pub const EXIT_SIGTERM: u8 = 143;

/// Gazette sends e-mail digests of a publication's new essays and reader replies.
#[derive(Debug, Parser)]
#[command(name = "gazette", version, about, long_about = None,
    after_help = "Exit codes: 0 success; 1 error (bad config, template error, database trouble); \
2 finished but part of the input failed (a source, whose items come later; or bad rows of an import); 3 finished but some messages were \
deferred or failed (see `gazette editions`; deferred ones are retried by the next send); 64 the command line was wrong; \
75 `inbound` could not record a message (kept for a retry); 130/143 `send` stopped by SIGINT/SIGTERM.")]
pub struct Cli {
    /// Configuration file; relative paths inside it are resolved from its folder.
    #[arg(
        long,
        short = 'c',
        global = true,
        default_value = "config.toml",
        value_name = "PATH"
    )]
    pub config: PathBuf,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only errors.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log format on stderr: "text" (default) or "json" (one object per line, for services).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Gazette's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a service: gather every `daemon.gather_every`, send each digest on its
    /// schedule, retry deferred messages. SIGTERM/SIGINT stop gracefully (messages in
    /// flight finish within `daemon.shutdown_grace`); SIGHUP reloads the config (kept
    /// only if valid). Logs at info level unless -q; see also --log-format.
    Run,
    /// Serve only the web endpoint (`[web] listen`): sign-up with double opt-in, one-click
    /// unsubscribe, preferences, /healthz and /metrics. `gazette run` serves it too.
    /// SIGTERM/SIGINT stop it.
    Serve,
    /// Start a publication: write a commented config.toml, the default templates and a
    /// sample folder source into DIR (default: here), ready for `gazette send`.
    Init {
        /// The folder to write into; created if missing. Nothing is overwritten.
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
    },
    /// Print a shell completion script to stdout, e.g.
    /// `gazette completions bash > /etc/bash_completion.d/gazette`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g.
    /// `gazette man > /usr/local/share/man/man1/gazette.1`.
    Man,
    /// Validate the config and templates, listing every problem with file:line:column.
    Check {
        /// Print one JSON object for scripts (valid, errors, warnings) on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Gather, then make and deliver each digest's next edition (continuing unfinished ones first).
    Send(SendArgs),
    /// Fetch every source and store what is new, without sending anything.
    Gather,
    /// Show each digest's next fire times and last edition, each source's last gather and
    /// error, and what deliveries are still owed.
    Status {
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Manage the subscriber list kept in the database (beside those in config.toml).
    Subscribers {
        /// What to do.
        #[command(subcommand)]
        action: SubscribersCmd,
    },
    /// Which essays readers follow (for digests with `replies = "followed"`): list them,
    /// or add or remove one reader's follow.
    Follows {
        /// What to do.
        #[command(subcommand)]
        action: follows::FollowsCmd,
    },
    /// Move the store: copy it into a new PostgreSQL database or SQLite file.
    Store {
        /// What to do.
        #[command(subcommand)]
        action: store::StoreCmd,
    },
    /// Requeue an edition's failed deliveries, so the next `send` (or `gazette run`)
    /// tries them again: all of them, or those whose last reply contains --reason, or one
    /// --address. Addresses that unsubscribed or bounced since are refused.
    Retry {
        /// The digest (default: every digest).
        #[arg(long)]
        digest: Option<String>,
        /// The edition number (default: each digest's newest edition).
        #[arg(long, requires = "digest")]
        edition: Option<i64>,
        /// Only failures whose last reply contains this text (e.g. "5.7.1").
        #[arg(long)]
        reason: Option<String>,
        /// Only the delivery to this address.
        #[arg(long)]
        address: Option<String>,
    },
    /// Read mail that came back: one message on stdin (an MTA pipe, procmail) or every
    /// new message in a Maildir. A permanent bounce marks the reader bounced, temporary
    /// ones do after `delivery.soft_bounce_limit` (3) within `soft_bounce_window` (30
    /// days); a complaint (ARF) unsubscribes them as "complained"; a message to a
    /// List-Unsubscribe mailto address takes them off that digest. Anything else is
    /// counted and left alone. Exit 75 (EX_TEMPFAIL) if a message could not be
    /// recorded: it is kept, and an MTA tries again.
    Inbound(inbound::InboundArgs),
    /// List past editions with their delivery counts.
    Editions {
        /// How many editions to show, newest first; 0 shows them all.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON for scripts instead of text (a list, newest first).
        #[arg(long)]
        json: bool,
    },
}

/// Options of `gazette send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Only this digest.
    #[arg(long, value_name = "NAME")]
    pub digest: Option<String>,
    /// Render everything and print a summary; write no database rows and no files.
    #[arg(long, conflicts_with_all = ["preview", "to"])]
    pub dry_run: bool,
    /// Write each copy's .eml, .html and .txt into DIR for inspection, named
    /// `<digest>-<edition>-<address>`; record nothing.
    #[arg(long, value_name = "DIR", conflicts_with = "to")]
    pub preview: Option<PathBuf>,
    /// With --preview: only this subscriber's copies.
    #[arg(long, value_name = "EMAIL", requires = "preview")]
    pub subscriber: Option<String>,
    /// Send one test copy of each digest's next edition to ADDR; record nothing.
    #[arg(long, value_name = "ADDR")]
    pub to: Option<String>,
    /// Only finish unfinished editions (after a crash or deferrals): no gathering, no new edition.
    #[arg(long, conflicts_with_all = ["dry_run", "preview", "to"])]
    pub resume: bool,
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    // A service logs what it does by default, and so does `inbound` (one line per
    // message, for the MTA's or cron's log); other commands print their own summary.
    let verbose = match cli.command {
        Command::Run | Command::Serve | Command::Inbound(_) => cli.verbose.max(1),
        _ => cli.verbose,
    };
    init_logging(verbose, cli.quiet, cli.log_format);
    // Two workers: SMTP sessions and the web endpoint run beside the main loop, which
    // serves the ledger; rendering has its own blocking pool. (A single-threaded
    // runtime capped delivery at the main loop's speed: 4,588 against 5,100 msg/s.)
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let code = match rt.block_on(dispatch(&cli)) {
        Ok(code) => code,
        Err(e) => {
            // Each cause once, even where a library repeats its source in its message.
            eprintln!("error: {}", crate::error_chain(e.as_ref()));
            EXIT_ERROR
        }
    };
    ExitCode::from(code)
}

/// Writes a line to stdout; a closed pipe (`gazette status | head`) is not an error.
fn print_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Writes bytes to stdout; a closed pipe is not an error.
fn print_bytes(bytes: &[u8]) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(bytes);
}

fn init_logging(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GAZETTE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("gazette={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

async fn dispatch(cli: &Cli) -> anyhow::Result<u8> {
    let say = |line: String| {
        if !cli.quiet {
            print_line(&line);
        }
    };
    // Commands that need no config (init writes one).
    match &cli.command {
        Command::Init { dir } => return init::init(dir, say),
        // Made in memory, then written: a closed pipe (`| head`) is not an error.
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "gazette", &mut out);
            print_bytes(&out);
            return Ok(EXIT_OK);
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            print_bytes(&out);
            return Ok(EXIT_OK);
        }
        _ => {}
    }
    let config = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            if let Command::Check { json: true } = &cli.command {
                let errors: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
                say(check::check_json(
                    &cli.config.display().to_string(),
                    &errors,
                    &[],
                    None,
                ));
            } else {
                eprintln!("error: {e}");
            }
            // An MTA piping a bounce keeps it queued on 75 until the config is fixed.
            if let Command::Inbound(_) = &cli.command {
                return Ok(EXIT_TEMPFAIL);
            }
            return Ok(EXIT_ERROR);
        }
    };
    match &cli.command {
        Command::Init { .. } | Command::Completions { .. } | Command::Man => Ok(EXIT_OK),
        Command::Run => run_daemon(config).await,
        Command::Serve => serve(config).await,
        Command::Subscribers { action } => subscribers::subscribers(&config, action, say),
        Command::Follows { action } => follows::follows(&config, action, say),
        Command::Store { action } => store::store(&config, action, say),
        Command::Check { json } => check::check(&config, *json, say),
        Command::Inbound(args) => Ok(inbound::inbound(&config, args, say)),
        Command::Send(args) => send::send(&config, args, cli.quiet, say).await,
        Command::Gather => {
            let mut store = Store::connect(&config.state)?;
            let outcomes = pipeline::gather(&config, &mut store, crate::time::now()).await?;
            let mut failed = 0;
            for g in &outcomes {
                match &g.result {
                    Ok(a) => say(format!(
                        "source `{}`: {}",
                        g.source,
                        send::gathered(a.essays as i64, a.replies as i64, a.unplaced as i64)
                    )),
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: source `{}` failed: {e}", g.source);
                    }
                }
            }
            Ok(if failed > 0 { EXIT_PARTIAL } else { EXIT_OK })
        }
        Command::Status { json } => {
            let st = crate::status::status(&config, crate::time::now())?;
            if *json {
                print_line(&serde_json::to_string_pretty(&st)?);
                return Ok(EXIT_OK);
            }
            let when =
                |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
            say("Digests:".into());
            for d in &st.digests {
                say(format!(
                    "  {}  \"{}\" in {}{}",
                    d.name,
                    d.schedule,
                    d.timezone,
                    if d.replies == "followed" {
                        "; replies: followed only"
                    } else {
                        ""
                    }
                ));
                if let Some(a) = &d.archive_url {
                    say(format!("    archive: {a}"));
                }
                if d.audiences.is_empty() {
                    if let (Some(local), Some(utc)) = (d.next_local.first(), d.next.first()) {
                        say(format!("    next: {local} ({})", when(utc)));
                    }
                }
                for a in &d.audiences {
                    if let (Some(local), Some(utc)) = (&a.next_local, &a.next) {
                        say(format!(
                            "    next for readers in {}: {local} ({})",
                            a.timezone,
                            when(utc)
                        ));
                    }
                }
                match &d.last_edition {
                    Some(e) => {
                        let counts: Vec<String> = e
                            .deliveries
                            .iter()
                            .map(|(k, n)| format!("{n} {k}"))
                            .collect();
                        say(format!(
                            "    last: #{} {}  {}{}",
                            e.number,
                            when(&e.created_at),
                            if counts.is_empty() {
                                "no deliveries".into()
                            } else {
                                counts.join(", ")
                            },
                            if e.finished { "" } else { "  (unfinished)" }
                        ));
                    }
                    None => say("    last: no edition yet".into()),
                }
            }
            if !st.inbound.kinds.is_empty() {
                let kinds: Vec<String> = st
                    .inbound
                    .kinds
                    .iter()
                    .map(|(k, n)| format!("{n} {}", k.replace('_', " ")))
                    .collect();
                say(format!(
                    "Inbound mail: {}{}.",
                    kinds.join(", "),
                    st.inbound
                        .last_at
                        .as_ref()
                        .map(|t| format!(" (last read {})", when(t)))
                        .unwrap_or_default()
                ));
            }
            if st.follows > 0 {
                say(format!(
                    "Follows: {} followed by {}.",
                    count(usize::try_from(st.follows).unwrap_or(0), "essay", "essays"),
                    count(
                        usize::try_from(st.following_readers).unwrap_or(0),
                        "reader",
                        "readers"
                    )
                ));
            }
            say("Sources:".into());
            for s in &st.sources {
                let last = s
                    .last_gathered_at
                    .as_ref()
                    .map(when)
                    .unwrap_or_else(|| "never".into());
                match &s.last_error {
                    Some(e) => say(format!("  {}  last gather {last}: FAILED: {e}", s.name)),
                    None if s.last_gathered_at.is_some() => say(format!(
                        "  {}  last gather {last}: ok ({}){}",
                        s.name,
                        send::gathered(s.last_new.0, s.last_new.1, s.unplaced),
                        s.route
                            .as_ref()
                            .map(|r| format!("; on its fallback: {r}"))
                            .unwrap_or_default()
                    )),
                    None => say(format!("  {}  never gathered", s.name)),
                }
            }
            let retry = st
                .next_retry
                .as_ref()
                .map(|t| format!(", next retry {}", when(t)))
                .unwrap_or_default();
            say(format!(
                "Deliveries owed: {} pending, {} deferred{retry}",
                st.pending, st.deferred
            ));
            Ok(EXIT_OK)
        }
        Command::Retry {
            digest,
            edition,
            reason,
            address,
        } => {
            if !config.state.exists() {
                eprintln!(
                    "error: {} does not exist yet: there is nothing to retry",
                    config.state_path.display()
                );
                return Ok(EXIT_ERROR);
            }
            let mut store = Store::connect(&config.state)?;
            let digests: Vec<&str> = match &digest {
                Some(d) if config.digests.iter().any(|x| &x.name == d) => vec![d.as_str()],
                Some(d) => {
                    eprintln!("error: no digest named `{d}` in the config");
                    return Ok(EXIT_ERROR);
                }
                None => config.digests.iter().map(|d| d.name.as_str()).collect(),
            };
            let mut total = 0;
            for d in digests {
                let ed = match edition {
                    Some(n) => store.edition_by_number(d, *n)?,
                    None => store.last_edition(d)?,
                };
                let Some(ed) = ed else {
                    if edition.is_some() {
                        eprintln!(
                            "error: digest `{d}` has no edition #{}",
                            edition.unwrap_or_default()
                        );
                        return Ok(EXIT_ERROR);
                    }
                    continue;
                };
                let (requeued, refused) =
                    store.requeue_failed(ed.id, reason.as_deref(), address.as_deref())?;
                total += requeued;
                let mut line = format!(
                    "Digest `{d}` edition #{}: {requeued} failed deliveries requeued",
                    ed.number
                );
                if refused > 0 {
                    line.push_str(&format!(
                        ", {refused} refused (the address unsubscribed or bounced)"
                    ));
                }
                line.push('.');
                say(line);
            }
            if total > 0 {
                say("They go out with the next `gazette send` (or `gazette run`).".into());
            }
            Ok(EXIT_OK)
        }
        Command::Editions { limit, json } => editions::editions(&config, *limit, *json, say),
    }
}

/// `gazette serve`: the web endpoint alone, until SIGTERM or SIGINT.
async fn serve(config: Config) -> anyhow::Result<u8> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("Stopping the web endpoint.");
    };
    match crate::web::serve(&config, stop).await {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(EXIT_ERROR)
        }
    }
}

async fn run_daemon(config: Config) -> anyhow::Result<u8> {
    use tokio::signal::unix::{signal, SignalKind};
    let (handle, controls) = crate::daemon::controls();
    // The one-writer lock first: a second daemon is told the database is in use, before
    // it could fail on the port the first one holds.
    let held = match crate::daemon::lock(&config.state_path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_ERROR);
        }
    };
    // The endpoint binds next, so a taken port stops the start instead of a silent
    // daemon whose unsubscribe links do not work.
    let web = match &config.web {
        Some(_) => match crate::web::bind(&config).await {
            Ok(listener) => {
                let mut stop = controls.stop.clone();
                let cfg = config.clone();
                Some(tokio::spawn(async move {
                    let until = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    if let Err(e) = crate::web::serve_on(&cfg, listener, until).await {
                        tracing::error!(error = %e, "The web endpoint stopped.");
                    }
                }))
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(EXIT_ERROR);
            }
        },
        None => None,
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let signals = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: stopping after the messages in flight.");
                    let _ = handle.stop.send(true);
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping after the messages in flight.");
                    let _ = handle.stop.send(true);
                }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration.");
                    let _ = handle.reload.send(());
                }
            }
        }
    });
    let result = crate::daemon::run_locked(config, controls, held).await;
    signals.abort();
    if let Some(web) = web {
        // The stop signal already reached it; let it finish the requests it holds.
        let _ = tokio::time::timeout(Duration::from_secs(5), web).await;
    }
    match result {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            tracing::error!(error = %e, "Gazette stopped on an error.");
            eprintln!("error: {e}");
            Ok(EXIT_ERROR)
        }
    }
}
