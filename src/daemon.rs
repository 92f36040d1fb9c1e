//! `gazette run`: the long-running service. It gathers each source on its own clock,
//! fires each digest at its schedule's ticks (per time zone for local-time digests),
//! applies the catch-up policy after downtime, retries deferred deliveries when due, and
//! stops or reloads on request. All timing comes from [`crate::time`], so a test can run
//! a simulated week; all decisions come from [`crate::schedule`].
//!
//! One writer: a lock file beside the database keeps a second daemon out. A one-off
//! `gazette send` may still run beside it; editions are unique per digest, audience and
//! tick, and every delivery is claimed, so nothing is made or sent twice.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, watch};

use crate::config::{self, Config, Digest};
use crate::deliver::StopSignal;
use crate::pipeline::{self, DigestOutcome, Mode, PipelineError, Quiet, SendOptions};
use crate::schedule::{self, CatchUp};
use crate::store::{Store, StoreError};
use crate::time;

/// How often an instance that does not lead looks for owed rows and tries to lead:
/// the bound on failover after the leader dies (PostgreSQL frees its lock at once).
pub const FOLLOWER_POLL: chrono::Duration = chrono::Duration::seconds(2);
/// A tick this close to now is on time, not a catch-up.
const ON_TIME: chrono::Duration = chrono::Duration::minutes(2);
/// The longest the daemon sleeps before looking at the clock again (clock jumps, suspend).
const MAX_NAP: chrono::Duration = chrono::Duration::seconds(60);

/// The daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another `gazette run` holds the database.
    #[error("another `gazette run` ({holder}) is already running on {db}; stop it first, or give this one its own `state.path`")]
    Locked {
        /// The database.
        db: PathBuf,
        /// Who holds it, as far as the lock file tells.
        holder: String,
    },
    /// The lock file could not be used.
    #[error("cannot use the lock file {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A send failed in a way that needs the operator (a template or ledger error).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Holds the one-writer lock until dropped (the OS releases it if the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// The database's real path: a symlink or another spelling of the same file must lock
/// the same lock file.
fn canonical(db: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(db) {
        return p;
    }
    match (db.parent(), db.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir)
                .map(|d| d.join(name))
                .unwrap_or_else(|_| db.to_owned())
        }
        _ => db.to_owned(),
    }
}

/// Takes the daemon lock for a database: `<db>.lock` beside its real path (symlinks
/// resolved), holding the owner's pid.
pub fn lock(db: &Path) -> Result<Lock, DaemonError> {
    let db_real = canonical(db);
    let mut path = db_real.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let err = |source| DaemonError::Lock {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "pid unknown".to_owned(),
                pid => format!("pid {pid}"),
            };
            return Err(DaemonError::Locked {
                db: db.to_owned(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    file.set_len(0).map_err(err)?;
    file.rewind().map_err(err)?;
    write!(file, "{}", std::process::id()).map_err(err)?;
    Ok(Lock { _file: file })
}

/// How the outside world steers a running daemon.
#[derive(Debug)]
pub struct Controls {
    /// Turns true to stop (SIGTERM, SIGINT).
    pub stop: watch::Receiver<bool>,
    /// One message per reload request (SIGHUP).
    pub reload: mpsc::UnboundedReceiver<()>,
}

/// The sending side of [`Controls`].
#[derive(Debug, Clone)]
pub struct ControlHandle {
    /// Set to true to stop.
    pub stop: watch::Sender<bool>,
    /// Send to reload the config.
    pub reload: mpsc::UnboundedSender<()>,
}

/// A connected pair of [`ControlHandle`] and [`Controls`].
pub fn controls() -> (ControlHandle, Controls) {
    let (stop_tx, stop) = watch::channel(false);
    let (reload_tx, reload) = mpsc::unbounded_channel();
    (
        ControlHandle {
            stop: stop_tx,
            reload: reload_tx,
        },
        Controls { stop, reload },
    )
}

/// When each source is next gathered, with back-off after failures.
#[derive(Debug, Default)]
struct GatherPlan {
    due: BTreeMap<String, DateTime<Utc>>,
    failures: HashMap<String, u32>,
}

impl GatherPlan {
    fn due_now(&mut self, config: &Config, now: DateTime<Utc>) -> Vec<String> {
        config
            .sources
            .iter()
            .map(|s| s.name().to_owned())
            .filter(|n| self.due.get(n).is_none_or(|t| *t <= now))
            .collect()
    }

    fn record(&mut self, config: &Config, outcome: &pipeline::GatherOutcome, now: DateTime<Utc>) {
        let every = config.daemon.gather_every(&outcome.source);
        let wait = if outcome.result.is_ok() {
            self.failures.remove(&outcome.source);
            every
        } else {
            // A failing source is tried less often, up to 8 intervals apart, with jitter
            // so that sources failing together do not retry together.
            let n = self.failures.entry(outcome.source.clone()).or_insert(0);
            *n += 1;
            every
                .saturating_mul(1 << (*n - 1).min(3))
                .mul_f64(0.75 + fastrand::f64() / 2.0)
        };
        let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
        self.due.insert(outcome.source.clone(), now + wait);
    }

    fn next(&self) -> Option<DateTime<Utc>> {
        self.due.values().min().copied()
    }
}

fn zone_of(digest: &Digest, audience: &str) -> Tz {
    if audience.is_empty() {
        digest.timezone
    } else {
        audience.parse().unwrap_or(digest.timezone)
    }
}

fn policy_name(p: CatchUp) -> String {
    match p {
        CatchUp::Skip => "skip".into(),
        CatchUp::Once => "once".into(),
        CatchUp::Within(d) => format!(
            "within:{}",
            humantime::format_duration(d.to_std().unwrap_or_default())
        ),
    }
}

/// Runs the daemon until `controls.stop` turns true. Unfinished editions are continued
/// first; a stop lets messages in flight finish within `daemon.shutdown_grace`.
pub async fn run(config: Config, controls: Controls) -> Result<(), DaemonError> {
    let held = lock(&config.state_path)?;
    run_locked(config, controls, held).await
}

/// [`run`] with the database lock already taken (before the web endpoint binds, so a
/// second daemon is told the database is in use, not that the port is).
pub async fn run_locked(
    mut config: Config,
    mut controls: Controls,
    _lock: Lock,
) -> Result<(), DaemonError> {
    let started = time::now();
    tracing::info!(config = %config.path.display(), digests = config.digests.len(),
        sources = config.sources.len(), "Gazette is running.");
    let mut plan = GatherPlan::default();
    let mut daemon = Daemon {
        stop: StopSignal::new(controls.stop.clone(), config.daemon.shutdown_grace),
        started,
        store: Store::connect(&config.state)?,
    };
    // Several instances on one PostgreSQL store: one leads (gathers and makes
    // editions), every one delivers. SQLite: always the leader (one daemon per file).
    let mut leading = daemon.store.try_lead()?;
    if !leading {
        tracing::info!("Another instance holds the leader lock: it gathers and makes editions; this one delivers what they owe, serves the endpoint, and takes over if that instance stops.");
    }
    // Editions a crash or a stop left unfinished go first.
    daemon.send(&config, None, None, None, true).await?;
    loop {
        if daemon.stop.is_set() {
            break;
        }
        if !leading && daemon.store.try_lead()? {
            leading = true;
            tracing::info!("Took over gathering and making editions: the instance that held the leader lock is gone.");
        }
        let now = time::now();
        let mut wake = now + MAX_NAP;
        if leading {
            let due = plan.due_now(&config, now);
            if !due.is_empty() {
                daemon.gather(&config, &mut plan, &due).await?;
            }
            for digest in &config.digests {
                if daemon.stop.is_set() {
                    break;
                }
                if let Some(next) = daemon.tick(&config, &mut plan, digest).await? {
                    wake = wake.min(next);
                }
            }
        } else {
            // Rows the leader's editions owe (or a dead instance left) are delivered here
            // too; the store hands each row to one instance.
            if daemon.store.owed()?.0 > 0 {
                daemon.send(&config, None, None, None, true).await?;
            }
            wake = wake.min(time::now() + FOLLOWER_POLL);
        }
        // Deferred rows are retried when they come due, and the next wake-up is the next
        // row's due time (not the next minute). Rows that came due while a retry pass ran
        // get the next pass at once; a row that stays due (its digest was removed from
        // the config) is looked at again after a short nap, never in a busy loop.
        let mut passes = 0;
        while let Some(t) = daemon.store.next_deferred_due()? {
            if t > time::now() || daemon.stop.is_set() || passes >= 3 {
                wake = wake.min(if passes >= 3 {
                    t.max(time::now() + chrono::Duration::milliseconds(200))
                } else {
                    t
                });
                break;
            }
            tracing::info!("Retrying deferred deliveries that are due.");
            daemon.send(&config, None, None, None, true).await?;
            passes += 1;
        }
        if let Some(t) = plan.next() {
            wake = wake.min(t);
        }
        tokio::select! {
            _ = time::sleep_until(wake) => {}
            _ = controls.stop.changed() => {}
            Some(()) = controls.reload.recv() => reload(&mut config, &mut daemon),
        }
    }
    tracing::info!(
        "Stopped: what was in flight is recorded; unfinished editions continue at the next start."
    );
    Ok(())
}

fn reload(config: &mut Config, daemon: &mut Daemon) {
    match config::load(&config.path) {
        Ok(new) => {
            if new.state_path != config.state_path
                || new.state.describe() != config.state.describe()
            {
                tracing::error!(
                    "Reload refused: `state.path` or `state.url` changed; restart Gazette to use another database. Keeping the running configuration."
                );
                return;
            }
            tracing::info!(config = %new.path.display(), digests = new.digests.len(),
                sources = new.sources.len(), "Reloaded the configuration; schedules take effect now.");
            daemon.stop = StopSignal::new(daemon.stop.receiver(), new.daemon.shutdown_grace);
            *config = new;
        }
        Err(e) => {
            for line in e.to_string().lines() {
                tracing::error!("{line}");
            }
            tracing::error!("Reload refused: the configuration above has errors; the running one stays in effect.");
        }
    }
}

struct Daemon {
    stop: StopSignal,
    started: DateTime<Utc>,
    /// The daemon's own connection, for its bookkeeping (ticks, audiences, retries);
    /// sends and gathers open theirs.
    store: Store,
}

impl Daemon {
    async fn gather(
        &self,
        config: &Config,
        plan: &mut GatherPlan,
        names: &[String],
    ) -> Result<(), DaemonError> {
        let now = time::now();
        let mut store = Store::connect(&config.state)?;
        let outcomes =
            pipeline::gather_some(config, &mut store, &|n| names.iter().any(|w| w == n), now)
                .await?;
        let (mut essays, mut replies, mut failed) = (0, 0, 0);
        for o in &outcomes {
            plan.record(config, o, now);
            match &o.result {
                Ok(a) => {
                    essays += a.essays;
                    replies += a.replies;
                }
                Err(_) => failed += 1,
            }
        }
        tracing::info!(
            sources = outcomes.len(),
            new_essays = essays,
            new_replies = replies,
            failed,
            "Gathered."
        );
        Ok(())
    }

    /// Handles one digest's due ticks (every audience); returns its next tick.
    async fn tick(
        &mut self,
        config: &Config,
        plan: &mut GatherPlan,
        digest: &Digest,
    ) -> Result<Option<DateTime<Utc>>, DaemonError> {
        let audiences = if digest.local_time {
            pipeline::audiences(&self.store, digest)?
        } else {
            vec![String::new()]
        };
        let mut next: Option<DateTime<Utc>> = None;
        for audience in audiences {
            if self.stop.is_set() {
                break;
            }
            let zone = zone_of(digest, &audience);
            let now = time::now();
            let last = {
                match self.store.last_tick(&digest.name, &audience)? {
                    Some(t) => t,
                    None => {
                        // A digest (or audience) seen for the first time starts counting
                        // now: ticks before that were never owed.
                        let from = if audience.is_empty() {
                            self.started.min(now)
                        } else {
                            now
                        };
                        self.store.set_last_tick(&digest.name, &audience, from)?;
                        from
                    }
                }
            };
            let d = schedule::decide(&digest.schedule, zone, last, now, digest.catch_up, ON_TIME);
            if let Some(n) = d.next {
                next = Some(next.map_or(n, |x| x.min(n)));
            }
            let Some(latest) = d.latest else { continue };
            let label = if audience.is_empty() {
                digest.name.clone()
            } else {
                format!("{} ({audience})", digest.name)
            };
            match d.fire {
                Some(tick) => {
                    if d.missed > 1 || now - tick > ON_TIME {
                        tracing::info!(digest = %label, missed = d.missed, tick = %tick,
                            policy = %policy_name(digest.catch_up),
                            "Catching up after downtime: one edition for the whole gap.");
                    }
                    // Gather right before the edition, so first-seen times are current.
                    self.gather(config, plan, &digest.sources).await?;
                    let audience_opt = (!audience.is_empty()).then(|| audience.clone());
                    self.send(config, Some(&digest.name), Some(tick), audience_opt, false)
                        .await?;
                }
                None => {
                    tracing::info!(digest = %label, missed = d.missed, latest = %latest,
                        policy = %policy_name(digest.catch_up),
                        "Skipping ticks missed while Gazette was down (catch-up policy).");
                }
            }
            if !self.stop.is_set() {
                self.store.set_last_tick(&digest.name, &audience, latest)?;
            }
        }
        Ok(next)
    }

    /// One pipeline send: for a digest's tick, or (`resume_only`) to continue unfinished
    /// editions and retry due deferrals of every digest.
    async fn send(
        &self,
        config: &Config,
        digest: Option<&str>,
        tick: Option<DateTime<Utc>>,
        audience: Option<String>,
        resume_only: bool,
    ) -> Result<(), DaemonError> {
        let opts = SendOptions {
            digest: digest.map(str::to_owned),
            resume_only,
            gather: false,
            tick,
            audience,
            wait_for_retries: false,
            stop: self.stop.clone(),
            ..SendOptions::new(Mode::Deliver, Arc::new(Quiet))
        };
        let report = match pipeline::send(config, &opts).await {
            Ok(r) => r,
            // A template error stops this edition (nothing of it was sent) but not the
            // service: the operator fixes the template and the next tick or reload goes on.
            Err(e @ PipelineError::Render(_)) => {
                tracing::error!(error = %e, "Edition not sent.");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        for outcome in &report.digests {
            match outcome {
                DigestOutcome::Delivered {
                    digest,
                    edition,
                    resumed,
                    tally,
                    ..
                } => tracing::info!(
                    digest = %digest,
                    edition,
                    resumed,
                    sent = tally.sent,
                    deferred = tally.deferred,
                    failed = tally.failed.len(),
                    suppressed = tally.suppressed,
                    stopped = tally.stopped,
                    "Edition delivered."
                ),
                DigestOutcome::NothingNew { digest, .. } => {
                    tracing::info!(digest = %digest, "Nothing new; no edition.")
                }
                DigestOutcome::NoSubscribers { digest } => {
                    tracing::info!(digest = %digest, "No subscribers; no edition.")
                }
                DigestOutcome::AlreadyCreated { digest } => tracing::info!(
                    digest = %digest,
                    "This tick's edition already exists (made by another process); not made again."
                ),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(source: &str, ok: bool) -> pipeline::GatherOutcome {
        pipeline::GatherOutcome {
            source: source.into(),
            result: if ok {
                Ok(Default::default())
            } else {
                Err("HTTP 503".into())
            },
        }
    }

    #[test]
    fn a_failing_source_backs_off_with_jitter_and_a_success_resets_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut config = config::load(&root.join("config.toml")).unwrap();
        config.daemon.gather_every = Duration::from_secs(600);
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut plan = GatherPlan::default();
        assert_eq!(plan.due_now(&config, now), ["site"], "never gathered: due");
        let mut waits = Vec::new();
        for _ in 0..5 {
            plan.record(&config, &outcome("site", false), now);
            waits.push((plan.due["site"] - now).num_seconds());
        }
        // 1, 2, 4, 8, 8 intervals of 600 s, each within ±25 %.
        for (w, n) in waits.iter().zip([1, 2, 4, 8, 8]) {
            let nominal = 600 * n;
            assert!(*w >= nominal * 3 / 4 && *w <= nominal * 5 / 4, "{waits:?}");
        }
        assert!(plan.due_now(&config, now).is_empty());
        plan.record(&config, &outcome("site", true), now);
        assert_eq!((plan.due["site"] - now).num_seconds(), 600);
        assert_eq!(plan.next(), Some(now + chrono::Duration::seconds(600)));
    }
}
