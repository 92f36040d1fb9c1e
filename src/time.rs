//! The one place Gazette reads the wall clock (clippy.toml bans the others), so that
//! schedules and windows can be driven by tests.
//!
//! A thread may be switched to *simulated* time: its clock then reads a start instant plus
//! the tokio time elapsed since, so under tokio's paused time a test runs a week of
//! schedules in moments. Per thread, so parallel tests keep their own clocks; a
//! simulation runs on a current-thread runtime, so every task of it sees the same clock.
//! (The binary never simulates: its multi-threaded runtime reads the real clock.)

use std::cell::Cell;

use chrono::{DateTime, Utc};

thread_local! {
    static SIMULATED: Cell<Option<(DateTime<Utc>, tokio::time::Instant)>> = const { Cell::new(None) };
}

/// The current time.
#[allow(clippy::disallowed_methods)]
pub fn now() -> DateTime<Utc> {
    match SIMULATED.with(Cell::get) {
        Some((start, at)) => {
            let elapsed = tokio::time::Instant::now().saturating_duration_since(at);
            start + chrono::Duration::from_std(elapsed).unwrap_or_default()
        }
        None => Utc::now(),
    }
}

/// From now on this thread's clock reads `start` plus the tokio time elapsed since this
/// call. For tests and simulations; call inside a runtime with paused time.
pub fn simulate_from(start: DateTime<Utc>) {
    SIMULATED.with(|s| s.set(Some((start, tokio::time::Instant::now()))));
}

/// Sleeps until the clock reads `t` (at once if it already has).
pub async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - now()).to_std() {
        tokio::time::sleep(d).await;
    }
}
