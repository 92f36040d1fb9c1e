//! The one place Gazette reads the wall clock (clippy.toml bans the others), so that
//! schedules and windows can be driven by tests.

use chrono::{DateTime, Utc};

/// The current time.
#[allow(clippy::disallowed_methods)]
pub fn now() -> DateTime<Utc> {
    Utc::now()
}
