//! The serde mirror of `config.toml`: exactly the file's shape, nothing validated yet.
//!
//! Values that are checked after parsing keep their `Spanned` location so that errors can
//! point at the line. Required keys are `Option`s here too: validation reports a missing
//! one beside every other problem instead of serde stopping at the first. Unknown keys are found by `serde_ignored` in `super::load` rather than
//! `deny_unknown_fields`, so that every typo is reported at once instead of only the first.

use serde::Deserialize;
use toml::Spanned;

/// A string value together with where it stood in the file.
pub(crate) type S = Spanned<String>;

#[derive(Debug, Deserialize)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) site: RawSite,
    #[serde(default)]
    pub(crate) state: RawState,
    #[serde(default)]
    pub(crate) delivery: RawDelivery,
    #[serde(default)]
    pub(crate) http: RawHttp,
    #[serde(default)]
    pub(crate) daemon: RawDaemon,
    pub(crate) web: Option<RawWeb>,
    #[serde(default, rename = "source")]
    pub(crate) sources: Vec<RawSource>,
    #[serde(default, rename = "digest")]
    pub(crate) digests: Vec<RawDigest>,
    #[serde(default, rename = "subscriber")]
    pub(crate) subscribers: Vec<RawSubscriber>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawSite {
    /// Required.
    pub(crate) name: Option<S>,
    /// Required.
    pub(crate) base_url: Option<S>,
    /// Required.
    pub(crate) from: Option<S>,
    pub(crate) reply_to: Option<S>,
    /// IANA time zone; default "UTC".
    pub(crate) timezone: Option<S>,
    /// Directory holding the template sets; default "templates" beside the config file.
    pub(crate) templates: Option<S>,
    /// Web archive of past editions, for List-Archive.
    pub(crate) archive_url: Option<S>,
}

/// `[web]`: the subscribe / unsubscribe / metrics endpoint.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawWeb {
    /// Socket address to listen on; default "127.0.0.1:8080".
    pub(crate) listen: Option<S>,
    /// Public address of the endpoint; default `site.base_url`.
    pub(crate) base_url: Option<S>,
    /// Environment variable holding the token secret.
    pub(crate) secret_env: Option<S>,
    /// File holding the token secret; default "gazette.secret" beside the state file.
    pub(crate) secret_file: Option<S>,
    /// Sign-ups per client address per hour; default 10.
    pub(crate) subscribe_per_ip: Option<Spanned<i64>>,
    /// Confirmation messages per e-mail address per hour; default 3.
    pub(crate) subscribe_per_address: Option<Spanned<i64>>,
    /// Take the client address from X-Forwarded-For (set by a reverse proxy); default false.
    pub(crate) behind_proxy: Option<bool>,
    /// Open connections at once; default 4096.
    pub(crate) max_connections: Option<Spanned<i64>>,
    /// A separate address serving `/metrics` (and `/healthz`) without a token.
    pub(crate) metrics_listen: Option<S>,
    /// Environment variable holding the bearer token `/metrics` asks for on `listen`.
    pub(crate) metrics_token_env: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawState {
    /// SQLite file; default "gazette.db" beside the config file.
    pub(crate) path: Option<S>,
    /// PostgreSQL URL, instead of a SQLite file.
    pub(crate) url: Option<S>,
    /// Environment variable holding the PostgreSQL password.
    pub(crate) password_env: Option<S>,
    /// File holding the PostgreSQL password.
    pub(crate) password_file: Option<S>,
    /// "prefer" (default), "require" or "off".
    pub(crate) tls: Option<S>,
    /// PEM roots for the server's certificate.
    pub(crate) ca_file: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawDelivery {
    /// "outbox" (default) or "smtp".
    pub(crate) transport: Option<S>,
    /// Directory of .eml files for the outbox transport; default "outbox".
    pub(crate) outbox: Option<S>,
    /// Parallel SMTP sessions; default 4.
    pub(crate) concurrency: Option<Spanned<i64>>,
    /// "50/s", "600/min"; default unlimited.
    pub(crate) rate: Option<S>,
    /// Attempts before a deferred message is failed; default unlimited (see retry_for).
    pub(crate) max_attempts: Option<Spanned<i64>>,
    /// How long a message is retried before it is failed; default "3d".
    pub(crate) retry_for: Option<S>,
    /// First retry delay, doubled per attempt; default "30s".
    pub(crate) retry_base: Option<S>,
    /// Longest a `send` waits in-run for deferred messages to come due; default "2m".
    pub(crate) retry_within_run: Option<S>,
    /// Envelope sender (where bounces go); default the From address.
    pub(crate) return_path: Option<S>,
    /// `bounces+<message>@domain`: each message's envelope sender names it.
    pub(crate) verp: Option<Spanned<bool>>,
    /// Temporary failures (DSNs) within `soft_bounce_window` that bounce a reader; default 3.
    pub(crate) soft_bounce_limit: Option<Spanned<i64>>,
    /// The window those are counted in; default "30days".
    pub(crate) soft_bounce_window: Option<S>,
    pub(crate) smtp: Option<RawSmtp>,
    pub(crate) dkim: Option<RawDkim>,
}

/// `[delivery.smtp]`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawSmtp {
    pub(crate) host: Option<S>,
    pub(crate) port: Option<Spanned<i64>>,
    /// "starttls" (default), "tls" or "none".
    pub(crate) tls: Option<S>,
    pub(crate) username: Option<S>,
    pub(crate) password_env: Option<S>,
    pub(crate) password_file: Option<S>,
    pub(crate) ca_file: Option<S>,
    pub(crate) timeout: Option<S>,
    /// Wait for the reply to the final dot; default "10m" (RFC 5321 §4.5.3.2.6).
    pub(crate) data_timeout: Option<S>,
    pub(crate) helo: Option<S>,
    /// Allow tls = "none" to a host that is not loopback.
    pub(crate) allow_insecure: Option<bool>,
}

/// `[delivery.dkim]`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawDkim {
    pub(crate) selector: Option<S>,
    pub(crate) domain: Option<S>,
    pub(crate) key_file: Option<S>,
    /// "rsa" or "ed25519"; default from the key file.
    pub(crate) algorithm: Option<S>,
}

/// `[http]`: how web sources are fetched.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawHttp {
    /// Whole-request timeout; default "30s".
    pub(crate) timeout: Option<S>,
    /// Connect timeout; default "10s".
    pub(crate) connect_timeout: Option<S>,
    /// Largest response accepted; default 10 MiB.
    pub(crate) max_body_bytes: Option<Spanned<i64>>,
    /// Retries for 5xx, 429, timeouts and resets; default 3.
    pub(crate) retries: Option<Spanned<i64>>,
    /// Concurrent requests per host; default 2.
    pub(crate) per_host: Option<Spanned<i64>>,
}

/// `[daemon]`: how `gazette run` behaves.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawDaemon {
    /// How often sources are gathered; default "15m".
    pub(crate) gather_every: Option<S>,
    /// How long a stop waits for messages in flight; default "30s".
    pub(crate) shutdown_grace: Option<S>,
}

/// One `[[source]]`. A flat struct rather than a tagged enum: toml's spans do not survive
/// serde's buffering of internally tagged enums, and the per-type keys are checked in
/// validation with their own locations.
#[derive(Debug, Deserialize)]
pub(crate) struct RawSource {
    /// Required.
    pub(crate) name: Option<S>,
    /// Required.
    #[serde(rename = "type")]
    pub(crate) kind: Option<S>,
    pub(crate) path: Option<S>,
    pub(crate) base_url: Option<S>,
    pub(crate) url: Option<S>,
    pub(crate) comments_url: Option<S>,
    pub(crate) comment_feeds: Option<Spanned<bool>>,
    pub(crate) comment_feed_limit: Option<Spanned<i64>>,
    pub(crate) max_pages: Option<Spanned<i64>>,
    pub(crate) recheck_window: Option<S>,
    pub(crate) include_protected: Option<Spanned<bool>>,
    pub(crate) allow_private: Option<Spanned<bool>>,
    pub(crate) follow_hosts: Option<Spanned<Vec<S>>>,
    pub(crate) max_new_items: Option<Spanned<i64>>,
    pub(crate) gather_budget: Option<S>,
    /// Overrides `daemon.gather_every` for this source.
    pub(crate) gather_every: Option<S>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawDigest {
    /// Required.
    pub(crate) name: Option<S>,
    pub(crate) title: Option<S>,
    /// Required.
    pub(crate) schedule: Option<S>,
    pub(crate) timezone: Option<S>,
    pub(crate) subject: Option<S>,
    pub(crate) template: Option<S>,
    pub(crate) include: Option<S>,
    pub(crate) sources: Option<Spanned<Vec<S>>>,
    pub(crate) skip_if_empty: Option<bool>,
    pub(crate) max_essays: Option<Spanned<i64>>,
    pub(crate) first_edition_lookback: Option<S>,
    /// "skip", "once" (default) or "within:<duration>".
    pub(crate) catch_up: Option<S>,
    /// Fire at the schedule's wall-clock time in each subscriber's zone.
    pub(crate) local_time: Option<bool>,
    /// "all" (default) or "followed".
    pub(crate) replies: Option<S>,
    /// New readers follow every essay they are sent.
    pub(crate) auto_follow: Option<bool>,
    /// Public web archive of its editions (needs `[web]`).
    pub(crate) archive: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawSubscriber {
    /// Required.
    pub(crate) email: Option<S>,
    pub(crate) name: Option<S>,
    pub(crate) digests: Option<Spanned<Vec<S>>>,
    pub(crate) timezone: Option<S>,
}
