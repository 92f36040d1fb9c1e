//! Loads `config.toml` in two stages: the serde mirror in [`raw`], then validation into a
//! typed [`Config`] whose cron schedules, time zones, mailboxes and URLs are already parsed.
//!
//! Validation collects *every* problem, each with file:line:column and the key in
//! backticks, so an operator fixes them all in one pass. Nothing else re-reads the file.

mod raw;
mod state;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono_tz::Tz;
use lettre::message::Mailbox;
use lettre::Address;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::source::http::HttpSettings;
use raw::{RawConfig, RawDigest, RawSource, RawSubscriber, S};
pub use state::{PgState, PgTls, State};

/// Validated configuration; every path is already resolved against the config's directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from.
    pub path: PathBuf,
    /// The publication.
    pub site: Site,
    /// SQLite database file (for a PostgreSQL store: where the SQLite file would be,
    /// beside which instance files such as the daemon lock and the secret live).
    pub state_path: PathBuf,
    /// Where the store lives: that SQLite file, or a PostgreSQL server.
    pub state: State,
    /// Where messages go.
    pub delivery: Delivery,
    /// How web sources are fetched.
    pub http: HttpSettings,
    /// Where essays and replies come from.
    pub sources: Vec<SourceConfig>,
    /// The newsletters subscribers can receive.
    pub digests: Vec<Digest>,
    /// Subscribers listed in the file.
    pub subscribers: Vec<Subscriber>,
    /// How `gazette run` behaves.
    pub daemon: DaemonSettings,
    /// The web endpoint, if `[web]` is configured: links in messages then go to it.
    pub web: Option<WebSettings>,
}

/// The `[web]` table.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// Where `gazette serve` and `gazette run` listen.
    pub listen: std::net::SocketAddr,
    /// Public address of the endpoint (no trailing slash); links in messages start here.
    pub base_url: String,
    /// Where the token secret comes from.
    pub secret: SecretSource,
    /// Sign-up requests per client address per hour.
    pub subscribe_per_ip: u32,
    /// Confirmation messages per e-mail address per hour.
    pub subscribe_per_address: u32,
    /// Rate limits key on X-Forwarded-For's last entry (the proxy's view of the client).
    pub behind_proxy: bool,
    /// Open connections at once; more are closed on arrival.
    pub max_connections: usize,
    /// A separate address serving `/metrics` (and `/healthz`) without a token.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The bearer token `/metrics` asks for on `listen`; without it (and without
    /// `metrics_listen`) `/metrics` is not served.
    pub metrics_token: Option<Secret>,
}

/// Where the secret that signs links comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// An environment variable's value (read at load time).
    Env(Secret),
    /// A file, created with 32 random bytes (mode 0600) on first use.
    File(PathBuf),
}

/// The `[daemon]` table and the per-source `gather_every` overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    /// How often each source is gathered.
    pub gather_every: std::time::Duration,
    /// Per-source overrides of `gather_every`, by source name.
    pub source_gather_every: std::collections::BTreeMap<String, std::time::Duration>,
    /// How long a stop waits for the messages in flight.
    pub shutdown_grace: std::time::Duration,
}

impl DaemonSettings {
    /// How often the named source is gathered.
    pub fn gather_every(&self, source: &str) -> std::time::Duration {
        self.source_gather_every
            .get(source)
            .copied()
            .unwrap_or(self.gather_every)
    }
}

/// The `[site]` table.
#[derive(Debug, Clone)]
pub struct Site {
    /// Publication name, shown in mail and in List-Id.
    pub name: String,
    /// Public address of the publication, without a trailing slash.
    pub base_url: String,
    /// Sender mailbox (display name and address).
    pub from: Mailbox,
    /// Optional Reply-To mailbox.
    pub reply_to: Option<Mailbox>,
    /// Default time zone for digests and subscribers.
    pub timezone: Tz,
    /// Directory holding template sets.
    pub templates_dir: PathBuf,
    /// Web archive of past editions (List-Archive), if any.
    pub archive_url: Option<String>,
}

/// The `[delivery]` table.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Where messages go.
    pub transport: TransportConfig,
    /// Messages in flight at once (parallel SMTP sessions).
    pub concurrency: usize,
    /// Most messages per period, if limited.
    pub rate: Option<Rate>,
    /// Attempts before a deferred message is failed for good, if limited (by default
    /// only age gives up: `retry_for`).
    pub max_attempts: Option<u32>,
    /// How long a message is retried after its edition was made before it is failed.
    pub retry_for: std::time::Duration,
    /// Delay before the first retry; doubled for each later one, with jitter.
    pub retry_base: std::time::Duration,
    /// How long one `send` waits for deferred messages to come due before leaving them
    /// for the next run.
    pub retry_within_run: std::time::Duration,
    /// DKIM signing, if configured.
    pub dkim: Option<DkimSettings>,
    /// The envelope sender (MAIL FROM, where bounces go); `None`: the From address.
    pub return_path: Option<Address>,
    /// VERP: each message's envelope sender is `<local>+<message>@<domain>`, naming the
    /// message (its Message-ID's local part) so a bounce says whose delivery failed.
    pub verp: bool,
}

/// The transport messages are handed to.
#[derive(Debug, Clone)]
pub enum TransportConfig {
    /// Write one .eml file per message into a directory.
    Outbox {
        /// The directory, created when needed.
        dir: PathBuf,
    },
    /// An SMTP relay.
    Smtp(SmtpSettings),
}

/// A secret from the environment or a file: never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: loopback only unless `allow_insecure`.
    None,
}

/// `[delivery.smtp]`.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Relay host.
    pub host: String,
    /// Port (default by TLS mode: 587, 465 or 25).
    pub port: u16,
    /// TLS mode.
    pub tls: TlsMode,
    /// AUTH user name.
    pub username: Option<String>,
    /// AUTH password, read from `password_env` or `password_file`.
    pub password: Option<Secret>,
    /// Extra CA certificate (PEM) for private relays.
    pub ca_pem: Option<Vec<u8>>,
    /// Connecting, the greeting, and each command's reply.
    pub timeout: std::time::Duration,
    /// The reply to the final dot, which a relay may take long to give (it is scanning
    /// or queueing the message); giving up early would send it twice.
    pub data_timeout: std::time::Duration,
    /// Name sent with EHLO (default: this machine's host name).
    pub helo: Option<String>,
}

/// A rate limit: `count` messages per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Messages…
    pub count: u32,
    /// …per this period.
    pub per: std::time::Duration,
}

/// DKIM signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// rsa-sha256 with a PKCS#1 PEM key.
    Rsa,
    /// ed25519-sha256 with a base64 32-byte seed.
    Ed25519,
}

/// `[delivery.dkim]`.
#[derive(Debug, Clone)]
pub struct DkimSettings {
    /// Selector published in DNS.
    pub selector: String,
    /// Signing domain (d=).
    pub domain: String,
    /// The private key text.
    pub key: Secret,
    /// Algorithm.
    pub algorithm: DkimAlgorithm,
}

/// One configured source, built from `[[source]]` by its `type`.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// A local folder of Markdown essays and TOML reply files.
    Folder(FolderSourceConfig),
    /// An RSS, Atom or JSON feed, with comment feeds.
    Feed(FeedSourceConfig),
    /// A WordPress site's REST API.
    WordPress(WordPressSourceConfig),
}

impl SourceConfig {
    /// The source's unique name.
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Folder(f) => &f.name,
            SourceConfig::Feed(f) => &f.name,
            SourceConfig::WordPress(w) => &w.name,
        }
    }
}

/// `type = "folder"`.
#[derive(Debug, Clone)]
pub struct FolderSourceConfig {
    /// Unique source name.
    pub name: String,
    /// The folder.
    pub path: PathBuf,
    /// Public URL under which essays are published (`<base_url>/<slug>/`).
    pub base_url: String,
}

/// `type = "feed"`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSourceConfig {
    /// Unique source name.
    pub name: String,
    /// The essays feed.
    pub url: String,
    /// A site-wide comments feed (WordPress: `/comments/feed/`).
    pub comments_url: Option<String>,
    /// Follow each essay's own comment feed (`wfw:commentRss`, Atom `rel="replies"`).
    pub comment_feeds: bool,
    /// Poll the comment feeds of at most this many essays, newest first.
    pub comment_feed_limit: usize,
    /// What it may fetch and how much one gather may take.
    pub limits: SourceLimits,
}

/// The fetch policy and caps of one web source (see `source::policy`).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceLimits {
    /// Its own host may be a private address (an intranet feed).
    pub allow_private: bool,
    /// Hosts besides its own that discovered URLs may point at.
    pub follow_hosts: Vec<String>,
    /// At most this many new items per gather; the rest wait for the next one.
    pub max_new_items: usize,
    /// Wall-clock budget of one gather, retries and waits included.
    pub gather_budget: std::time::Duration,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            allow_private: false,
            follow_hosts: Vec::new(),
            max_new_items: 50,
            gather_budget: std::time::Duration::from_secs(300),
        }
    }
}

/// `type = "wordpress"`.
#[derive(Debug, Clone, PartialEq)]
pub struct WordPressSourceConfig {
    /// Unique source name.
    pub name: String,
    /// The site's address, without a trailing slash.
    pub base_url: String,
    /// At most this many pages of 100 posts or comments per gather.
    pub max_pages: u32,
    /// How far back each gather re-lists posts and comments (ids only), to catch
    /// scheduled posts and comments approved after they were written.
    pub recheck_window: chrono::Duration,
    /// Mail password-protected posts (title and link only, never their content).
    pub include_protected: bool,
    /// What it may fetch and how much one gather may take.
    pub limits: SourceLimits,
}

/// What a digest carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Include {
    /// New essays.
    pub essays: bool,
    /// New reader replies.
    pub replies: bool,
}

/// One `[[digest]]`.
#[derive(Debug, Clone)]
pub struct Digest {
    /// Unique digest name (also used in List-Id and file names).
    pub name: String,
    /// Human title; defaults to the name.
    pub title: String,
    /// When it goes out.
    pub schedule: cron::Schedule,
    /// The schedule as written, for display.
    pub schedule_text: String,
    /// Time zone the schedule is read in.
    pub timezone: Tz,
    /// Subject line, a Tera template string.
    pub subject: String,
    /// Template set name: a folder in the templates directory.
    pub template: String,
    /// Essays, replies or both.
    pub include: Include,
    /// Names of the sources it draws from.
    pub sources: Vec<String>,
    /// Send nothing when there is nothing new.
    pub skip_if_empty: bool,
    /// At most this many essays per edition (newest first).
    pub max_essays: Option<usize>,
    /// How far back the first edition reaches.
    pub first_edition_lookback: chrono::Duration,
    /// What `gazette run` does about ticks missed while it was down.
    pub catch_up: crate::schedule::CatchUp,
    /// Fire at the schedule's wall-clock time in each subscriber's own time zone.
    pub local_time: bool,
    /// Which new replies each reader's copy carries.
    pub replies: Replies,
    /// Readers who have not chosen follow every essay a copy of this digest sends them.
    pub auto_follow: bool,
    /// Its editions are public at `/archive/<name>/` on the web endpoint.
    pub archive: bool,
}

/// Which replies a reader's copy carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replies {
    /// Every new reply (the same for everyone).
    #[default]
    All,
    /// Only new replies under the essays the reader follows.
    Followed,
}

/// One `[[subscriber]]`.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Normalised address (domain lower-cased).
    pub email: Address,
    /// Display name.
    pub name: Option<String>,
    /// Digests they receive.
    pub digests: Vec<String>,
    /// Their time zone, if not the digest's.
    pub timezone: Option<Tz>,
}

/// One problem found in the configuration, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what to do, naming the key in backticks.
    pub message: String,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but has problems.
    #[error("{}", ProblemList { path, problems })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

struct ProblemList<'a> {
    path: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{} has {n} problem{}:",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.problems {
            write!(
                f,
                "\n  {}:{}:{}: {}",
                self.path.display(),
                p.line,
                p.column,
                p.message
            )?;
        }
        Ok(())
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Validates config text as if it had been read from `path` (which anchors relative paths).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut v = Validator::new(text);
    let config = v.run(path);
    match config {
        Some(c) if v.problems.is_empty() => Ok(c),
        _ => {
            v.problems.sort_by_key(|p| (p.line, p.column));
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: v.problems,
            })
        }
    }
}

/// One step of a key path, as serde_ignored reports it.
enum Seg {
    Key(String),
    Index(usize),
}

struct Validator<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl<'t> Validator<'t> {
    fn new(text: &'t str) -> Self {
        Validator {
            text,
            problems: Vec::new(),
        }
    }

    fn at(&mut self, offset: usize, message: String) {
        let (line, column) = line_col(self.text, offset);
        self.problems.push(Problem {
            line,
            column,
            message,
        });
    }

    fn at_span<T>(&mut self, s: &Spanned<T>, message: String) {
        self.at(s.span().start, message);
    }

    /// A required key: reports it missing at its table's location.
    fn required<'r>(&mut self, value: &'r Option<S>, table: &[Seg], key: &str) -> Option<&'r S> {
        if value.is_none() {
            let (offset, dotted) = match DeTable::parse(self.text) {
                Ok(t) => locate(t.get_ref(), table),
                Err(_) => (0, String::new()),
            };
            let full = if dotted.is_empty() {
                key.to_owned()
            } else {
                format!("{dotted}.{key}")
            };
            let table_name = if dotted.is_empty() {
                "the file".to_owned()
            } else {
                format!("`{dotted}`")
            };
            self.at(
                offset,
                format!("required key `{full}` is missing from {table_name}; add it"),
            );
        }
        value.as_ref()
    }

    fn run(&mut self, path: &Path) -> Option<Config> {
        let de = match toml::Deserializer::parse(self.text) {
            Ok(d) => d,
            Err(e) => {
                let offset = e.span().map(|s| s.start).unwrap_or(0);
                self.at(offset, format!("invalid TOML: {}", e.message().trim()));
                return None;
            }
        };
        let mut unknown: Vec<Vec<Seg>> = Vec::new();
        let raw: Result<RawConfig, _> = serde_ignored::deserialize(de, |p| {
            let mut segs = Vec::new();
            collect_path(&p, &mut segs);
            unknown.push(segs);
        });
        // Spans are only needed to report problems: parse them only then, so a large
        // valid file (many subscribers) is parsed once.
        if !unknown.is_empty() {
            let table = DeTable::parse(self.text).ok();
            for segs in &unknown {
                let (offset, dotted) = match &table {
                    Some(t) => locate(t.get_ref(), segs),
                    None => (0, String::new()),
                };
                let hint = self.suggest(segs);
                self.at(offset, format!("unknown key `{dotted}`{hint}"));
            }
        }
        let raw = match raw {
            Ok(r) => r,
            Err(e) => {
                let offset = e.span().map(|s| s.start).unwrap_or(0);
                self.at(offset, describe_serde_error(e.message()));
                return None;
            }
        };
        self.validate(raw, path)
    }

    fn suggest(&self, segs: &[Seg]) -> String {
        let Some(Seg::Key(last)) = segs.last() else {
            return String::new();
        };
        let section = segs.iter().find_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        });
        let known: &[&str] = match (section, segs.len()) {
            (_, 1) => &[
                "site",
                "state",
                "delivery",
                "http",
                "daemon",
                "web",
                "source",
                "digest",
                "subscriber",
            ],
            (Some("daemon"), _) => &["gather_every", "shutdown_grace"],
            (Some("web"), _) => &[
                "listen",
                "base_url",
                "secret_env",
                "secret_file",
                "subscribe_per_ip",
                "subscribe_per_address",
                "behind_proxy",
                "max_connections",
                "metrics_listen",
                "metrics_token_env",
            ],
            (Some("site"), _) => &[
                "name",
                "base_url",
                "from",
                "reply_to",
                "timezone",
                "templates",
                "archive_url",
            ],
            (Some("state"), _) => &[
                "path",
                "url",
                "password_env",
                "password_file",
                "tls",
                "ca_file",
            ],
            (Some("delivery"), 2) => &[
                "transport",
                "outbox",
                "concurrency",
                "rate",
                "max_attempts",
                "retry_base",
                "retry_within_run",
                "retry_for",
                "return_path",
                "verp",
                "smtp",
                "dkim",
            ],
            (Some("delivery"), _) => &[
                "host",
                "port",
                "tls",
                "username",
                "password_env",
                "password_file",
                "ca_file",
                "timeout",
                "data_timeout",
                "helo",
                "allow_insecure",
                "selector",
                "domain",
                "key_file",
                "algorithm",
            ],
            (Some("source"), _) => &[
                "name",
                "type",
                "path",
                "base_url",
                "url",
                "comments_url",
                "comment_feeds",
                "comment_feed_limit",
                "max_pages",
                "recheck_window",
                "include_protected",
                "allow_private",
                "follow_hosts",
                "max_new_items",
                "gather_budget",
                "gather_every",
            ],
            (Some("http"), _) => &[
                "timeout",
                "connect_timeout",
                "max_body_bytes",
                "retries",
                "per_host",
            ],
            (Some("digest"), _) => &[
                "name",
                "title",
                "schedule",
                "timezone",
                "subject",
                "template",
                "include",
                "sources",
                "skip_if_empty",
                "max_essays",
                "first_edition_lookback",
                "catch_up",
                "local_time",
                "replies",
                "auto_follow",
                "archive",
            ],
            (Some("subscriber"), _) => &["email", "name", "digests", "timezone"],
            _ => &[],
        };
        known
            .iter()
            .filter(|k| edit_distance(k, last) <= 2)
            .min_by_key(|k| edit_distance(k, last))
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_else(|| format!("; known keys here: {}", known.join(", ")))
    }

    fn validate(&mut self, raw: RawConfig, path: &Path) -> Option<Config> {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_owned()
            } else {
                dir.join(p)
            }
        };

        let site_seg = [Seg::Key("site".into())];
        let site_name = self.required(&raw.site.name, &site_seg, "name");
        let site_url = self.required(&raw.site.base_url, &site_seg, "base_url");
        let site_from = self.required(&raw.site.from, &site_seg, "from");
        let site_tz = match &raw.site.timezone {
            Some(tz) => self.timezone(tz, "site.timezone").unwrap_or(Tz::UTC),
            None => Tz::UTC,
        };
        let base_url = site_url
            .and_then(|u| self.url(u, "site.base_url"))
            .map(|u| u.trim_end_matches('/').to_owned());
        let from = site_from.and_then(|f| self.mailbox(f, "site.from"));
        let reply_to = raw
            .site
            .reply_to
            .as_ref()
            .and_then(|r| self.mailbox(r, "site.reply_to"));
        let templates_dir = resolve(
            raw.site
                .templates
                .as_ref()
                .map(|s| s.get_ref().as_str())
                .unwrap_or("templates"),
        );
        if !templates_dir.is_dir() {
            let offset = raw.site.templates.as_ref().map(|s| s.span().start);
            self.at(
                offset.unwrap_or(0),
                format!(
                    "`site.templates`: template directory {} does not exist",
                    templates_dir.display()
                ),
            );
        }
        let name = site_name
            .map(|n| plain_line(n.get_ref()))
            .unwrap_or_default();
        if let Some(n) = site_name.filter(|_| name.is_empty()) {
            self.at_span(n, "`site.name` must not be empty".into());
        }

        let state = self.state(&raw.state, &resolve);
        let state_path = match &state {
            State::Sqlite(p) => p.clone(),
            State::Postgres(_) => resolve("gazette.db"),
        };
        let web = raw.web.as_ref().and_then(|w| {
            let shared = matches!(state, State::Postgres(_));
            self.web(w, base_url.as_deref(), &state_path, shared, &resolve)
        });

        let from_domain = from.as_ref().map(|f| f.email.domain().to_owned());
        let delivery = self.delivery(&raw.delivery, &resolve, from_domain.as_deref());
        let mut http = self.http(&raw.http);

        let mut sources = Vec::new();
        let mut seen = HashSet::new();
        let mut source_names = Vec::new();
        let mut source_gather_every = std::collections::BTreeMap::new();
        for (i, s) in raw.sources.iter().enumerate() {
            let key = format!("source[{i}]");
            let segs = [Seg::Key("source".into()), Seg::Index(i)];
            let name = self.required(&s.name, &segs, "name");
            let kind = self.required(&s.kind, &segs, "type");
            let (Some(name), Some(kind)) = (name, kind) else {
                continue;
            };
            source_names.push(name.get_ref().clone());
            if !seen.insert(name.get_ref().to_lowercase()) {
                self.at_span(
                    name,
                    format!(
                        "`{key}.name`: duplicate source name \"{}\"; names must be unique",
                        name.get_ref()
                    ),
                );
            }
            if let Some(every) = &s.gather_every {
                let d = self.interval(every, &format!("{key}.gather_every"));
                source_gather_every.insert(name.get_ref().clone(), d);
            }
            if let Some(src) = self.source(s, name, kind, &key, &resolve, base_url.as_deref()) {
                sources.push(src);
            }
        }

        // The hosts `allow_private` opens: only the configured URLs' own.
        for src in &sources {
            let (urls, limits): (Vec<&str>, _) = match src {
                SourceConfig::Feed(f) => (
                    std::iter::once(f.url.as_str())
                        .chain(f.comments_url.as_deref())
                        .collect(),
                    &f.limits,
                ),
                SourceConfig::WordPress(w) => (vec![w.base_url.as_str()], &w.limits),
                SourceConfig::Folder(_) => continue,
            };
            if limits.allow_private {
                http.private_ok.extend(
                    urls.iter()
                        .filter_map(|u| url::Url::parse(u).ok())
                        .filter_map(|u| crate::source::policy::private_key(&u)),
                );
            }
        }

        let mut digests = Vec::new();
        let mut seen = HashSet::new();
        let mut digest_names = Vec::new();
        for (i, d) in raw.digests.iter().enumerate() {
            let key = format!("digest[{i}]");
            let segs = [Seg::Key("digest".into()), Seg::Index(i)];
            let name = self.required(&d.name, &segs, "name");
            let schedule = self.required(&d.schedule, &segs, "schedule");
            let Some(name) = name else {
                continue;
            };
            digest_names.push(name.get_ref().clone());
            if !seen.insert(name.get_ref().to_lowercase()) {
                self.at_span(
                    name,
                    format!(
                        "`{key}.name`: duplicate digest name \"{}\"; names must be unique",
                        name.get_ref()
                    ),
                );
            }
            let Some(schedule) = schedule else {
                continue;
            };
            if let Some(dg) = self.digest(
                d,
                name,
                schedule,
                &key,
                site_tz,
                &source_names,
                &templates_dir,
            ) {
                digests.push(dg);
            }
        }
        for (i, d) in raw.digests.iter().enumerate() {
            if let Some(a) = d.archive.as_ref().filter(|a| *a.get_ref() && web.is_none()) {
                self.at_span(
                    a,
                    format!("`digest[{i}].archive`: a public archive needs the web endpoint; add a `[web]` table (the archive is served at <web.base_url>/archive/<digest>/)"),
                );
            }
        }
        if raw.digests.is_empty() {
            self.at(
                0,
                "no `[[digest]]` defined; add at least one digest with a `name` and `schedule`"
                    .into(),
            );
        }

        let mut subscribers = Vec::new();
        let mut seen = HashSet::new();
        for (i, s) in raw.subscribers.iter().enumerate() {
            let key = format!("subscriber[{i}]");
            let segs = [Seg::Key("subscriber".into()), Seg::Index(i)];
            let Some(email) = self.required(&s.email, &segs, "email") else {
                continue;
            };
            if let Some(sub) = self.subscriber(s, email, &key, &digest_names) {
                if !seen.insert(sub.email.to_string().to_lowercase()) {
                    self.at_span(
                        email,
                        format!(
                            "`{key}.email`: {} is listed twice (addresses compare case-insensitively); merge the entries",
                            sub.email
                        ),
                    );
                } else {
                    subscribers.push(sub);
                }
            }
        }

        Some(Config {
            path: path.to_owned(),
            site: Site {
                name,
                base_url: base_url?,
                from: from?,
                reply_to,
                timezone: site_tz,
                templates_dir,
                archive_url: raw
                    .site
                    .archive_url
                    .as_ref()
                    .and_then(|u| self.url(u, "site.archive_url")),
            },
            state_path,
            state,
            delivery: delivery?,
            http,
            sources,
            digests,
            subscribers,
            daemon: DaemonSettings {
                gather_every: raw
                    .daemon
                    .gather_every
                    .as_ref()
                    .map(|g| self.interval(g, "daemon.gather_every"))
                    .unwrap_or(std::time::Duration::from_secs(15 * 60)),
                source_gather_every,
                shutdown_grace: raw
                    .daemon
                    .shutdown_grace
                    .as_ref()
                    .map(|g| self.interval(g, "daemon.shutdown_grace"))
                    .unwrap_or(std::time::Duration::from_secs(30)),
            },
            web,
        })
    }

    fn web(
        &mut self,
        raw: &raw::RawWeb,
        site_url: Option<&str>,
        state_path: &Path,
        shared: bool,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Option<WebSettings> {
        let listen = match &raw.listen {
            Some(l) => match l.get_ref().parse::<std::net::SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.at_span(l, format!("`web.listen`: \"{}\" is not an address and port; write e.g. \"127.0.0.1:8080\"", l.get_ref()));
                    None
                }
            },
            None => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8080))),
        };
        let base_url = match &raw.base_url {
            Some(u) => self.url(u, "web.base_url").and_then(|text| {
                let url = url::Url::parse(&text).ok()?;
                let loopback = match url.host() {
                    Some(url::Host::Domain(d)) => d == "localhost",
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                };
                if url.scheme() != "https" && !loopback {
                    self.at_span(u, format!("`web.base_url`: \"{text}\" must be https: mail clients only offer one-click unsubscribe (RFC 8058) over https"));
                    return None;
                }
                Some(text.trim_end_matches('/').to_owned())
            }),
            None => site_url.map(str::to_owned),
        };
        let secret = match (&raw.secret_env, &raw.secret_file) {
            (Some(_), Some(f)) => {
                self.at_span(
                    f,
                    "`web`: give `secret_env` or `secret_file`, not both".into(),
                );
                None
            }
            (Some(var), None) => match std::env::var(var.get_ref()) {
                Ok(v) if v.len() >= 32 => Some(SecretSource::Env(Secret::new(v))),
                Ok(_) => {
                    self.at_span(var, format!("`web.secret_env`: the value of {} is shorter than 32 characters; use e.g. `openssl rand -hex 32`", var.get_ref()));
                    None
                }
                Err(_) => {
                    self.at_span(
                        var,
                        format!(
                            "`web.secret_env`: environment variable {} is not set",
                            var.get_ref()
                        ),
                    );
                    None
                }
            },
            (None, Some(f)) => Some(SecretSource::File(resolve(f.get_ref()))),
            // Every instance on a shared store signs and checks the same links, so the
            // secret cannot be one each instance makes for itself.
            (None, None) if shared => {
                let offset = match DeTable::parse(self.text) {
                    Ok(t) => locate(t.get_ref(), &[Seg::Key("web".into())]).0,
                    Err(_) => 0,
                };
                self.at(offset, "`web`: with a PostgreSQL store every instance must sign links with one secret; set `secret_env` (the same value on each instance, e.g. from `openssl rand -hex 32`) or `secret_file` (a copy of one file)".into());
                None
            }
            (None, None) => Some(SecretSource::File(
                state_path.with_file_name("gazette.secret"),
            )),
        };
        let metrics_listen = raw.metrics_listen.as_ref().and_then(|l| {
            let parsed = l.get_ref().parse::<std::net::SocketAddr>().ok();
            if parsed.is_none() {
                self.at_span(l, format!("`web.metrics_listen`: \"{}\" is not an address and port; write e.g. \"127.0.0.1:9464\"", l.get_ref()));
            }
            parsed
        });
        let metrics_token = raw.metrics_token_env.as_ref().and_then(|var| {
            match std::env::var(var.get_ref()) {
                Ok(v) if v.len() >= 16 => Some(Secret::new(v)),
                Ok(_) => {
                    self.at_span(var, format!("`web.metrics_token_env`: the value of {} is shorter than 16 characters; use e.g. `openssl rand -hex 16`", var.get_ref()));
                    None
                }
                Err(_) => {
                    self.at_span(var, format!("`web.metrics_token_env`: environment variable {} is not set", var.get_ref()));
                    None
                }
            }
        });
        let max_connections = self
            .count(&raw.max_connections, "web.max_connections", 16)
            .map_or(4096, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let per_ip = self.count(&raw.subscribe_per_ip, "web.subscribe_per_ip", 1);
        let per_address = self.count(&raw.subscribe_per_address, "web.subscribe_per_address", 1);
        Some(WebSettings {
            listen: listen?,
            base_url: base_url?,
            secret: secret?,
            subscribe_per_ip: per_ip.map_or(10, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            subscribe_per_address: per_address.map_or(3, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            behind_proxy: raw.behind_proxy.unwrap_or(false),
            max_connections,
            metrics_listen,
            metrics_token,
        })
    }

    fn http(&mut self, raw: &raw::RawHttp) -> HttpSettings {
        let mut h = HttpSettings::default();
        let mut duration = |v: &Option<S>, key: &str, into: &mut std::time::Duration| {
            if let Some(v) = v {
                match humantime::parse_duration(v.get_ref()) {
                    Ok(d) if !d.is_zero() => *into = d,
                    _ => self.at_span(
                        v,
                        format!(
                            "`http.{key}`: \"{}\" is not a duration; write e.g. \"30s\"",
                            v.get_ref()
                        ),
                    ),
                }
            }
        };
        duration(&raw.timeout, "timeout", &mut h.timeout);
        duration(
            &raw.connect_timeout,
            "connect_timeout",
            &mut h.connect_timeout,
        );
        if let Some(n) = self.count(&raw.max_body_bytes, "http.max_body_bytes", 1024) {
            h.max_body_bytes = n;
        }
        if let Some(n) = self.count(&raw.retries, "http.retries", 0) {
            h.retries = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(n) = self.count(&raw.per_host, "http.per_host", 1) {
            h.per_host = usize::try_from(n).unwrap_or(usize::MAX);
        }
        h
    }

    /// A whole number of at least `min`.
    /// A positive duration such as "15m"; a bad one is reported and replaced by one minute
    /// so that validation can go on (the config is refused anyway).
    fn interval(&mut self, v: &S, key: &str) -> std::time::Duration {
        match humantime::parse_duration(v.get_ref().trim()) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                self.at_span(
                    v,
                    format!("`{key}`: \"{}\" is not a positive duration; write e.g. \"30s\", \"15m\" or \"1h\"", v.get_ref()),
                );
                std::time::Duration::from_secs(60)
            }
        }
    }

    fn count(&mut self, v: &Option<Spanned<i64>>, key: &str, min: i64) -> Option<u64> {
        let v = v.as_ref()?;
        match u64::try_from(*v.get_ref()) {
            Ok(n) if *v.get_ref() >= min => Some(n),
            _ => {
                self.at_span(
                    v,
                    format!("`{key}` must be a whole number of at least {min}"),
                );
                None
            }
        }
    }

    fn delivery(
        &mut self,
        raw: &raw::RawDelivery,
        resolve: &dyn Fn(&str) -> PathBuf,
        from_domain: Option<&str>,
    ) -> Option<Delivery> {
        let outbox = resolve(
            raw.outbox
                .as_ref()
                .map(|s| s.get_ref().as_str())
                .unwrap_or("outbox"),
        );
        let transport = match raw.transport.as_ref().map(|t| (t, t.get_ref().as_str())) {
            None | Some((_, "outbox")) => Some(TransportConfig::Outbox { dir: outbox }),
            Some((t, "smtp")) => match &raw.smtp {
                Some(smtp) => self.smtp(smtp, resolve).map(TransportConfig::Smtp),
                None => {
                    self.at_span(t, "`delivery.transport` is \"smtp\" but there is no `[delivery.smtp]` table with at least `host`".into());
                    None
                }
            },
            Some((t, other)) => {
                self.at_span(
                    t,
                    format!("`delivery.transport`: unknown transport \"{other}\"; expected \"outbox\" or \"smtp\""),
                );
                None
            }
        };
        let duration = |v: &Option<S>,
                        default: std::time::Duration|
         -> Result<std::time::Duration, (usize, String)> {
            match v {
                None => Ok(default),
                Some(v) => humantime::parse_duration(v.get_ref())
                    .map_err(|_| (v.span().start, v.get_ref().clone())),
            }
        };
        let mut take = |r: Result<std::time::Duration, (usize, String)>,
                        key: &str,
                        d: std::time::Duration| match r {
            Ok(v) => v,
            Err((at, text)) => {
                self.at(at, format!("`delivery.{key}`: \"{text}\" is not a duration; write e.g. \"30s\" or \"2m\""));
                d
            }
        };
        let retry_base = take(
            duration(&raw.retry_base, std::time::Duration::from_secs(30)),
            "retry_base",
            std::time::Duration::from_secs(30),
        );
        let retry_within_run = take(
            duration(&raw.retry_within_run, std::time::Duration::from_secs(120)),
            "retry_within_run",
            std::time::Duration::from_secs(120),
        );
        // Give up by age, as MTAs do (Postfix: maximal_queue_lifetime = 5d).
        let retry_for = take(
            duration(
                &raw.retry_for,
                std::time::Duration::from_secs(3 * 24 * 3600),
            ),
            "retry_for",
            std::time::Duration::from_secs(3 * 24 * 3600),
        );
        let concurrency = self
            .count(&raw.concurrency, "delivery.concurrency", 1)
            .map(|n| usize::try_from(n.min(256)).unwrap_or(256))
            .unwrap_or(4);
        let max_attempts = self
            .count(&raw.max_attempts, "delivery.max_attempts", 1)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));

        let rate = raw.rate.as_ref().and_then(|r| match parse_rate(r.get_ref()) {
            Some(rate) => Some(rate),
            None => {
                self.at_span(r, format!("`delivery.rate`: \"{}\" is not a rate; write e.g. \"50/s\" or \"600/min\"", r.get_ref()));
                None
            }
        });
        let dkim = raw
            .dkim
            .as_ref()
            .and_then(|d| self.dkim(d, resolve, from_domain));
        let return_path = raw.return_path.as_ref().and_then(|r| {
            match parse_address(r.get_ref()) {
                Ok(a) if !a.user().contains('+') || !raw.verp.as_ref().is_some_and(|v| *v.get_ref()) => Some(a),
                Ok(_) => {
                    self.at_span(r, "`delivery.return_path`: with `verp = true` the address must have no `+` (Gazette adds `+<message>`)".into());
                    None
                }
                Err(e) => {
                    self.at_span(r, format!("`delivery.return_path`: \"{}\" is not an e-mail address ({e})", r.get_ref()));
                    None
                }
            }
        });
        let verp = raw.verp.as_ref().is_some_and(|v| *v.get_ref());
        Some(Delivery {
            transport: transport?,
            concurrency,
            rate,
            max_attempts,
            retry_for,
            retry_base,
            retry_within_run,
            dkim,
            return_path,
            verp,
        })
    }

    fn smtp(
        &mut self,
        raw: &raw::RawSmtp,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Option<SmtpSettings> {
        let segs = [Seg::Key("delivery".into()), Seg::Key("smtp".into())];
        let host = self
            .required(&raw.host, &segs, "host")?
            .get_ref()
            .trim()
            .to_owned();
        let tls = match raw.tls.as_ref().map(|t| (t, t.get_ref().as_str())) {
            None | Some((_, "starttls")) => TlsMode::StartTls,
            Some((_, "tls")) => TlsMode::Tls,
            Some((_, "none")) => TlsMode::None,
            Some((t, other)) => {
                self.at_span(t, format!("`delivery.smtp.tls`: \"{other}\" is not one of \"starttls\", \"tls\", \"none\""));
                TlsMode::StartTls
            }
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if tls == TlsMode::None && !loopback && raw.allow_insecure != Some(true) {
            if let Some(t) = &raw.tls {
                self.at_span(t, format!("`delivery.smtp.tls`: \"none\" would send mail and passwords in clear text to {host}; use \"starttls\" or \"tls\", or set `allow_insecure = true` if the network is trusted"));
            }
        }
        let port = match &raw.port {
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(n) if n > 0 => n,
                _ => {
                    self.at_span(p, "`delivery.smtp.port` must be between 1 and 65535".into());
                    0
                }
            },
            None => match tls {
                TlsMode::StartTls => 587,
                TlsMode::Tls => 465,
                TlsMode::None => 25,
            },
        };
        let password = self.secret(
            "delivery.smtp",
            &raw.password_env,
            &raw.password_file,
            resolve,
        );
        let ca_pem = raw.ca_file.as_ref().and_then(|f| {
            let path = resolve(f.get_ref());
            match std::fs::read(&path) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    self.at_span(
                        f,
                        format!(
                            "`delivery.smtp.ca_file`: cannot read {}: {e}",
                            path.display()
                        ),
                    );
                    None
                }
            }
        });
        let timeout = match &raw.timeout {
            None => std::time::Duration::from_secs(30),
            Some(t) => humantime::parse_duration(t.get_ref()).unwrap_or_else(|_| {
                self.at_span(
                    t,
                    format!(
                        "`delivery.smtp.timeout`: \"{}\" is not a duration",
                        t.get_ref()
                    ),
                );
                std::time::Duration::from_secs(30)
            }),
        };
        let data_timeout = match &raw.data_timeout {
            None => std::time::Duration::from_secs(600),
            Some(t) => match humantime::parse_duration(t.get_ref()) {
                Ok(d) if !d.is_zero() => d,
                _ => {
                    self.at_span(
                        t,
                        format!(
                            "`delivery.smtp.data_timeout`: \"{}\" is not a positive duration; write e.g. \"10m\"",
                            t.get_ref()
                        ),
                    );
                    std::time::Duration::from_secs(600)
                }
            },
        };
        if raw.username.is_some() != password.is_some()
            && (raw.password_env.is_none() && raw.password_file.is_none())
        {
            if let Some(u) = &raw.username {
                self.at_span(u, "`delivery.smtp.username` needs `password_env` or `password_file` (a password never goes in the file itself)".into());
            }
        }
        Some(SmtpSettings {
            host,
            port,
            tls,
            username: raw.username.as_ref().map(|u| u.get_ref().clone()),
            password,
            ca_pem,
            timeout,
            data_timeout,
            helo: raw.helo.as_ref().map(|h| h.get_ref().clone()),
        })
    }

    fn dkim(
        &mut self,
        raw: &raw::RawDkim,
        resolve: &dyn Fn(&str) -> PathBuf,
        from_domain: Option<&str>,
    ) -> Option<DkimSettings> {
        let segs = [Seg::Key("delivery".into()), Seg::Key("dkim".into())];
        let selector = self.required(&raw.selector, &segs, "selector");
        let key_file = self.required(&raw.key_file, &segs, "key_file");
        let (selector, key_file) = (selector?, key_file?);
        let path = resolve(key_file.get_ref());
        let key = match std::fs::read_to_string(&path) {
            Ok(k) => k,
            Err(e) => {
                self.at_span(
                    key_file,
                    format!(
                        "`delivery.dkim.key_file`: cannot read {}: {e}",
                        path.display()
                    ),
                );
                return None;
            }
        };
        // PKCS#8 ("BEGIN PRIVATE KEY", what `openssl genrsa` and `genpkey` write today)
        // is turned into what lettre reads: PKCS#1 for RSA, the bare seed for Ed25519.
        let pkcs8 = pkcs8_dkim_key(&key);
        let key = pkcs8.as_ref().map_or(key, |(k, _)| k.clone());
        let algorithm = match raw.algorithm.as_ref().map(|a| (a, a.get_ref().as_str())) {
            Some((_, "rsa")) => DkimAlgorithm::Rsa,
            Some((_, "ed25519")) => DkimAlgorithm::Ed25519,
            None if pkcs8.is_some() => pkcs8.map_or(DkimAlgorithm::Rsa, |(_, a)| a),
            None if key.contains("BEGIN RSA PRIVATE KEY") => DkimAlgorithm::Rsa,
            None => DkimAlgorithm::Ed25519,
            Some((a, other)) => {
                self.at_span(
                    a,
                    format!("`delivery.dkim.algorithm`: \"{other}\" is not \"rsa\" or \"ed25519\""),
                );
                return None;
            }
        };
        let key = key.trim().to_owned();
        let valid = match algorithm {
            DkimAlgorithm::Rsa => lettre::message::dkim::DkimSigningKey::new(
                &key,
                lettre::message::dkim::DkimSigningAlgorithm::Rsa,
            )
            .is_ok(),
            DkimAlgorithm::Ed25519 => lettre::message::dkim::DkimSigningKey::new(
                &key,
                lettre::message::dkim::DkimSigningAlgorithm::Ed25519,
            )
            .is_ok(),
        };
        if !valid {
            self.at_span(key_file, format!("`delivery.dkim.key_file`: {} is not a usable key (RSA or Ed25519 as PKCS#8 PEM, \"BEGIN PRIVATE KEY\", as openssl writes it; RSA as PKCS#1 PEM, \"BEGIN RSA PRIVATE KEY\"; Ed25519 as the base64 32-byte seed)", path.display()));
            return None;
        }
        let domain = match (&raw.domain, from_domain) {
            (Some(d), _) => d.get_ref().trim().to_lowercase(),
            (None, Some(d)) => d.to_owned(),
            (None, None) => return None,
        };
        Some(DkimSettings {
            selector: selector.get_ref().trim().to_owned(),
            domain,
            key: Secret::new(key),
            algorithm,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn source_limits(&mut self, s: &raw::RawSource, key: &str) -> SourceLimits {
        let mut l = SourceLimits {
            allow_private: s.allow_private.as_ref().is_some_and(|b| *b.get_ref()),
            ..SourceLimits::default()
        };
        for h in s.follow_hosts.iter().flat_map(|v| v.get_ref()) {
            let host = h.get_ref().trim().to_ascii_lowercase();
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
            {
                self.at_span(
                    h,
                    format!("`{key}.follow_hosts`: \"{}\" is not a host name; write e.g. \"comments.example.org\"", h.get_ref()),
                );
            } else {
                l.follow_hosts.push(host);
            }
        }
        if let Some(n) = self.count(&s.max_new_items, &format!("{key}.max_new_items"), 1) {
            l.max_new_items = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(v) = &s.gather_budget {
            l.gather_budget = self.interval(v, &format!("{key}.gather_budget"));
        }
        l
    }

    fn source(
        &mut self,
        s: &RawSource,
        name: &S,
        kind: &S,
        key: &str,
        resolve: &dyn Fn(&str) -> PathBuf,
        site_url: Option<&str>,
    ) -> Option<SourceConfig> {
        let name_span = name;
        let name = name.get_ref().trim().to_owned();
        if name.is_empty() || name.contains(char::is_control) {
            self.at_span(
                name_span,
                format!("`{key}.name` must be a non-empty single line"),
            );
        }
        let kind_name = kind.get_ref().as_str();
        let applies: &[&str] = match kind_name {
            "folder" => &["path", "base_url"],
            "feed" => &[
                "url",
                "comments_url",
                "comment_feeds",
                "comment_feed_limit",
                "allow_private",
                "follow_hosts",
                "max_new_items",
                "gather_budget",
            ],
            "wordpress" => &[
                "base_url",
                "max_pages",
                "recheck_window",
                "include_protected",
                "allow_private",
                "follow_hosts",
                "max_new_items",
                "gather_budget",
            ],
            _ => &[],
        };
        let given: [(&str, Option<usize>); 13] = [
            ("path", s.path.as_ref().map(|v| v.span().start)),
            ("base_url", s.base_url.as_ref().map(|v| v.span().start)),
            ("url", s.url.as_ref().map(|v| v.span().start)),
            (
                "comments_url",
                s.comments_url.as_ref().map(|v| v.span().start),
            ),
            (
                "comment_feeds",
                s.comment_feeds.as_ref().map(|v| v.span().start),
            ),
            (
                "comment_feed_limit",
                s.comment_feed_limit.as_ref().map(|v| v.span().start),
            ),
            ("max_pages", s.max_pages.as_ref().map(|v| v.span().start)),
            (
                "recheck_window",
                s.recheck_window.as_ref().map(|v| v.span().start),
            ),
            (
                "include_protected",
                s.include_protected.as_ref().map(|v| v.span().start),
            ),
            (
                "allow_private",
                s.allow_private.as_ref().map(|v| v.span().start),
            ),
            (
                "follow_hosts",
                s.follow_hosts.as_ref().map(|v| v.span().start),
            ),
            (
                "max_new_items",
                s.max_new_items.as_ref().map(|v| v.span().start),
            ),
            (
                "gather_budget",
                s.gather_budget.as_ref().map(|v| v.span().start),
            ),
        ];
        let limits = self.source_limits(s, key);
        if matches!(kind_name, "folder" | "feed" | "wordpress") {
            for (k, at) in given {
                if let Some(at) = at.filter(|_| !applies.contains(&k)) {
                    self.at(
                        at,
                        format!(
                            "`{key}.{k}` does not apply to a {kind_name} source (its keys: {})",
                            applies.join(", ")
                        ),
                    );
                }
            }
        }
        match kind_name {
            "feed" => {
                let Some(url) = &s.url else {
                    self.at_span(kind, format!("`{key}.url` is required for a feed source: the address of its RSS, Atom or JSON feed"));
                    return None;
                };
                let url = self.url(url, &format!("{key}.url"));
                let comments_url = match &s.comments_url {
                    Some(c) => Some(self.url(c, &format!("{key}.comments_url"))?),
                    None => None,
                };
                let limit = self
                    .count(
                        &s.comment_feed_limit,
                        &format!("{key}.comment_feed_limit"),
                        0,
                    )
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                    .unwrap_or(20);
                Some(SourceConfig::Feed(FeedSourceConfig {
                    name,
                    url: url?,
                    comments_url,
                    comment_feeds: s
                        .comment_feeds
                        .as_ref()
                        .map(|b| *b.get_ref())
                        .unwrap_or(true),
                    comment_feed_limit: limit,
                    limits,
                }))
            }
            "wordpress" => {
                let Some(base) = &s.base_url else {
                    self.at_span(kind, format!("`{key}.base_url` is required for a wordpress source: the site's address"));
                    return None;
                };
                let base = self
                    .url(base, &format!("{key}.base_url"))
                    .map(|u| u.trim_end_matches('/').to_owned());
                let max_pages = self
                    .count(&s.max_pages, &format!("{key}.max_pages"), 1)
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                    .unwrap_or(10);
                let recheck_window = s
                    .recheck_window
                    .as_ref()
                    .map(|v| self.interval(v, &format!("{key}.recheck_window")))
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .unwrap_or_else(|| chrono::Duration::days(14));
                Some(SourceConfig::WordPress(WordPressSourceConfig {
                    name,
                    base_url: base?,
                    max_pages,
                    recheck_window,
                    include_protected: s.include_protected.as_ref().is_some_and(|b| *b.get_ref()),
                    limits,
                }))
            }
            "folder" => {
                let Some(path) = &s.path else {
                    self.at_span(
                        kind,
                        format!("`{key}.path` is required for a folder source: the directory holding essays"),
                    );
                    return None;
                };
                let dir = resolve(path.get_ref());
                if !dir.is_dir() {
                    self.at_span(
                        path,
                        format!("`{key}.path`: folder {} does not exist", dir.display()),
                    );
                }
                let base_url = match &s.base_url {
                    Some(u) => self
                        .url(u, &format!("{key}.base_url"))?
                        .trim_end_matches('/')
                        .to_owned(),
                    None => site_url?.to_owned(),
                };
                Some(SourceConfig::Folder(FolderSourceConfig {
                    name,
                    path: dir,
                    base_url,
                }))
            }
            other => {
                self.at_span(
                    kind,
                    format!("`{key}.type`: unknown source type \"{other}\"; use \"folder\", \"feed\" or \"wordpress\""),
                );
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn digest(
        &mut self,
        d: &RawDigest,
        name: &S,
        schedule: &S,
        key: &str,
        site_tz: Tz,
        sources: &[String],
        templates_dir: &Path,
    ) -> Option<Digest> {
        let name_span = name;
        let name = name.get_ref().trim().to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.at_span(
                name_span,
                format!("`{key}.name`: \"{}\" must be non-empty and use only letters, digits, '-' and '_' (it appears in List-Id and file names)", name_span.get_ref()),
            );
        }
        let schedule_text = schedule.get_ref().clone();
        let schedule = match parse_schedule(schedule.get_ref()) {
            Ok(s) => Some(s),
            Err(e) => {
                self.at_span(
                    schedule,
                    format!("`{key}.schedule`: invalid cron expression \"{}\": {e}; use 5 fields (min hour day month weekday), 6-7 fields with seconds, or @hourly/@daily/@weekly", schedule.get_ref()),
                );
                None
            }
        };
        let timezone = match &d.timezone {
            Some(tz) => self.timezone(tz, &format!("{key}.timezone")),
            None => Some(site_tz),
        };
        let template = d
            .template
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_else(|| "default".into());
        let set_dir = templates_dir.join(&template);
        let missing: Vec<&str> = ["digest.html", "digest.txt"]
            .into_iter()
            .filter(|f| !set_dir.join(f).is_file())
            .collect();
        if templates_dir.is_dir() && !missing.is_empty() {
            let offset = d
                .template
                .as_ref()
                .map(|t| t.span().start)
                .unwrap_or(name_span.span().start);
            self.at(
                offset,
                format!(
                    "`{key}.template`: template set \"{template}\" has no {} (looked in {})",
                    missing.join(" or "),
                    set_dir.display()
                ),
            );
        }
        let include = match d.include.as_ref().map(|i| i.get_ref().as_str()) {
            None | Some("both") => Include {
                essays: true,
                replies: true,
            },
            Some("essays") => Include {
                essays: true,
                replies: false,
            },
            Some("replies") => Include {
                essays: false,
                replies: true,
            },
            Some(other) => {
                let other = other.to_owned();
                if let Some(i) = &d.include {
                    self.at_span(
                        i,
                        format!("`{key}.include`: \"{other}\" is not one of \"essays\", \"replies\", \"both\""),
                    );
                }
                Include {
                    essays: true,
                    replies: true,
                }
            }
        };
        let digest_sources = match &d.sources {
            None => sources.to_vec(),
            Some(list) => {
                for s in list.get_ref() {
                    if !sources.iter().any(|k| k == s.get_ref()) {
                        self.at_span(
                            s,
                            format!(
                                "`{key}.sources`: unknown source \"{}\"; defined sources: {}",
                                s.get_ref(),
                                quoted_list(sources)
                            ),
                        );
                    }
                }
                list.get_ref().iter().map(|s| s.get_ref().clone()).collect()
            }
        };
        let max_essays = match &d.max_essays {
            // A reader skims twenty; a flood of hundreds would bury them (and the relay).
            None => Some(20),
            Some(m) if *m.get_ref() >= 1 => usize::try_from(*m.get_ref()).ok(),
            Some(m) => {
                self.at_span(
                    m,
                    format!(
                        "`{key}.max_essays` must be at least 1 (leave it out for the default, 20)"
                    ),
                );
                None
            }
        };
        let lookback = match &d.first_edition_lookback {
            None => Some(chrono::Duration::days(7)),
            Some(l) => match humantime::parse_duration(l.get_ref())
                .ok()
                .and_then(|d| chrono::Duration::from_std(d).ok())
            {
                Some(d) => Some(d),
                None => {
                    self.at_span(
                        l,
                        format!("`{key}.first_edition_lookback`: \"{}\" is not a duration; write e.g. \"7d\", \"36h\" or \"2weeks\"", l.get_ref()),
                    );
                    None
                }
            },
        };
        let subject = d
            .subject
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "{{ site.name }}: {{ digest.title }}".into());
        let catch_up = match &d.catch_up {
            None => Some(crate::schedule::CatchUp::Once),
            Some(c) => crate::schedule::CatchUp::parse(c.get_ref()).or_else(|| {
                self.at_span(
                    c,
                    format!("`{key}.catch_up`: \"{}\" is not a catch-up policy; write \"skip\", \"once\" or \"within:<duration>\" (e.g. \"within:6h\")", c.get_ref()),
                );
                None
            }),
        };
        let replies = match d.replies.as_ref().map(|r| r.get_ref().trim()) {
            None | Some("all") => Some(Replies::All),
            Some("followed") => Some(Replies::Followed),
            Some(other) => {
                if let Some(r) = &d.replies {
                    self.at_span(
                        r,
                        format!("`{key}.replies`: \"{other}\" is not a choice; write \"all\" (every new reply) or \"followed\" (only under the essays each reader follows)"),
                    );
                }
                None
            }
        };
        Some(Digest {
            title: d
                .title
                .as_ref()
                .map(|t| plain_line(t.get_ref()))
                .unwrap_or_else(|| name.clone()),
            name,
            schedule: schedule?,
            schedule_text,
            timezone: timezone?,
            subject,
            template,
            include,
            sources: digest_sources,
            skip_if_empty: d.skip_if_empty.unwrap_or(true),
            max_essays,
            first_edition_lookback: lookback?,
            catch_up: catch_up?,
            local_time: d.local_time.unwrap_or(false),
            replies: replies?,
            auto_follow: d.auto_follow.unwrap_or(false),
            archive: d.archive.as_ref().is_some_and(|a| *a.get_ref()),
        })
    }

    fn subscriber(
        &mut self,
        s: &RawSubscriber,
        email_span: &S,
        key: &str,
        digests: &[String],
    ) -> Option<Subscriber> {
        let email = match parse_address(email_span.get_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                self.at_span(
                    email_span,
                    format!(
                        "`{key}.email`: \"{}\" is not a valid e-mail address ({e})",
                        email_span.get_ref()
                    ),
                );
                None
            }
        };
        let timezone = s
            .timezone
            .as_ref()
            .map(|tz| self.timezone(tz, &format!("{key}.timezone")));
        let wanted = match &s.digests {
            None => digests.to_vec(),
            Some(list) => {
                for d in list.get_ref() {
                    if !digests.iter().any(|k| k == d.get_ref()) {
                        self.at_span(
                            d,
                            format!(
                                "`{key}.digests`: unknown digest \"{}\"; defined digests: {}",
                                d.get_ref(),
                                quoted_list(digests)
                            ),
                        );
                    }
                }
                list.get_ref().iter().map(|d| d.get_ref().clone()).collect()
            }
        };
        // Some(None): a time zone was given but is invalid (already reported).
        let timezone = match timezone {
            Some(None) => return None,
            Some(tz) => tz,
            None => None,
        };
        Some(Subscriber {
            email: email?,
            name: s
                .name
                .as_ref()
                .map(|n| plain_line(n.get_ref()))
                .filter(|n| !n.is_empty()),
            digests: wanted,
            timezone,
        })
    }

    fn timezone(&mut self, tz: &S, key: &str) -> Option<Tz> {
        match tz.get_ref().parse::<Tz>() {
            Ok(t) => Some(t),
            Err(_) => {
                self.at_span(
                    tz,
                    format!("`{key}`: unknown time zone \"{}\"; use an IANA name such as \"Europe/Berlin\" or \"UTC\"", tz.get_ref()),
                );
                None
            }
        }
    }

    fn url(&mut self, u: &S, key: &str) -> Option<String> {
        match url::Url::parse(u.get_ref()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(u.get_ref().trim().to_owned())
            }
            Ok(_) => {
                self.at_span(
                    u,
                    format!("`{key}`: \"{}\" must be an http or https URL", u.get_ref()),
                );
                None
            }
            Err(e) => {
                self.at_span(
                    u,
                    format!("`{key}`: \"{}\" is not a URL ({e})", u.get_ref()),
                );
                None
            }
        }
    }

    fn mailbox(&mut self, m: &S, key: &str) -> Option<Mailbox> {
        match Mailbox::from_str(m.get_ref()) {
            Ok(mb) => match parse_address(mb.email.as_ref()) {
                Ok(email) => Some(Mailbox::new(mb.name.map(|n| plain_line(&n)), email)),
                Err(e) => {
                    self.at_span(m, format!("`{key}`: {e}"));
                    None
                }
            },
            Err(e) => {
                self.at_span(
                    m,
                    format!("`{key}`: \"{}\" is not a mailbox ({e}); write \"Name <address@example.org>\"", m.get_ref()),
                );
                None
            }
        }
    }
}

/// Parses "50/s", "600/min", "1000/h".
pub fn parse_rate(text: &str) -> Option<Rate> {
    let (count, unit) = text.trim().split_once('/')?;
    let count: u32 = count.trim().parse().ok().filter(|n| *n > 0)?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => std::time::Duration::from_secs(1),
        "m" | "min" | "minute" => std::time::Duration::from_secs(60),
        "h" | "hour" => std::time::Duration::from_secs(3600),
        _ => return None,
    };
    Some(Rate { count, per })
}

/// Parses an address and lower-cases its domain, the part that is case-insensitive.
pub fn parse_address(s: &str) -> Result<Address, String> {
    let s = s.trim();
    // Addresses RFC 5321 allows but no list should hold, because relays and mail
    // clients mishandle them (and they let one row break a whole edition): a quoted
    // local part, an IP-literal domain, control or line-separator characters.
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}'))
    {
        return Err(format!(
            "it contains the control or line-separator character U+{:04X}; an address is one line of printable text",
            c as u32
        ));
    }
    if s.starts_with('"') {
        return Err("a quoted local part (\"…\"@domain) is not accepted: many relays and mail clients mishandle it".into());
    }
    if s.rsplit('@').next().is_some_and(|d| d.starts_with('[')) {
        return Err(
            "an IP-literal domain (user@[1.2.3.4]) is not accepted: use a domain name".into(),
        );
    }
    // One spelling per mailbox: "é" typed precomposed or as e + U+0301 is one address.
    let nfc = icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(s);
    let a = Address::from_str(&nfc).map_err(|e| e.to_string())?;
    // One spelling per domain, so duplicates are found: lower case, and an
    // internationalised domain in its ASCII (punycode) form.
    let domain = idna::domain_to_ascii(a.domain())
        .map_err(|_| {
            format!(
                "the domain {:?} is not a valid internationalised domain name",
                a.domain()
            )
        })?
        .to_lowercase();
    Address::new(a.user(), domain).map_err(|e| e.to_string())
}

/// The mailbox an address most likely reaches, for limits that must not be dodged by
/// spelling: lower case, without a `+tag`, without dots in the local part. Only ever
/// used as a key (two addresses it merges share a limit); mail goes to the address.
pub fn canonical_mailbox(address: &Address) -> String {
    let user = address.user().to_lowercase();
    let user = user.split('+').next().unwrap_or_default().replace('.', "");
    format!("{user}@{}", address.domain().to_lowercase())
}

/// Parses a cron schedule: standard 5-field cron (weekday 0-7, Sunday = 0 or 7), the
/// cron crate's 6/7-field form with seconds, or `@hourly`/`@daily`/`@weekly`/….
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    let text = text.trim();
    let fields: Vec<&str> = text.split_whitespace().collect();
    let expr = if fields.len() == 5 {
        // The cron crate numbers weekdays 1-7 from Sunday; standard cron numbers them 0-7
        // from Sunday. Names mean the same in both, so translate numbers to names.
        format!(
            "0 {} {} {} {} {}",
            fields[0],
            fields[1],
            fields[2],
            fields[3],
            weekday_names(fields[4])
        )
    } else {
        text.to_owned()
    };
    // The cron crate repeats the expression with a caret; keep only its explanation.
    cron::Schedule::from_str(&expr).map_err(|e| {
        let text = e.to_string();
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty() && l.trim() != "^")
            .unwrap_or("not a cron expression")
            .trim()
            .to_owned()
    })
}

fn weekday_names(field: &str) -> String {
    const NAMES: [&str; 8] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let mut out = String::new();
    let mut digits = String::new();
    let mut after_slash = false;
    let flush = |digits: &mut String, out: &mut String, after_slash: bool| {
        if digits.is_empty() {
            return;
        }
        match digits.parse::<usize>() {
            Ok(n) if !after_slash && n < NAMES.len() => out.push_str(NAMES[n]),
            _ => out.push_str(digits),
        }
        digits.clear();
    };
    for c in field.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out, after_slash);
            after_slash = c == '/';
            out.push(c);
        }
    }
    flush(&mut digits, &mut out, after_slash);
    out
}

/// Collapses whitespace and drops control characters: names and titles are one plain line.
pub fn plain_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn quoted_list(items: &[String]) -> String {
    if items.is_empty() {
        return "(none)".into();
    }
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_serde_error(message: &str) -> String {
    // serde says "missing field `x`"; name it as a key the operator must add.
    let m = message.trim();
    if let Some(rest) = m.strip_prefix("missing field ") {
        format!("required key {rest} is missing; add it")
    } else {
        m.to_owned()
    }
}

fn collect_path(p: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
    use serde_ignored::Path as P;
    match p {
        P::Root => {}
        P::Seq { parent, index } => {
            collect_path(parent, out);
            out.push(Seg::Index(*index));
        }
        P::Map { parent, key } => {
            collect_path(parent, out);
            out.push(Seg::Key(key.clone()));
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            collect_path(parent, out)
        }
    }
}

/// Finds where a key path stands in the document, and spells it as `a[0].b`.
fn locate(root: &DeTable<'_>, segs: &[Seg]) -> (usize, String) {
    let mut dotted = String::new();
    let mut offset = 0;
    let mut table: Option<&DeTable<'_>> = Some(root);
    let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !dotted.is_empty() {
                    dotted.push('.');
                }
                dotted.push_str(k);
                let found = table.and_then(|t| t.iter().find(|(key, _)| key.get_ref() == k));
                table = None;
                array = None;
                if let Some((key, value)) = found {
                    offset = key.span().start;
                    match value.get_ref() {
                        DeValue::Table(t) => table = Some(t),
                        DeValue::Array(a) => array = Some(a.as_ref()),
                        _ => {}
                    }
                }
            }
            Seg::Index(i) => {
                dotted.push_str(&format!("[{i}]"));
                let found = array.and_then(|a| a.get(*i));
                table = None;
                array = None;
                if let Some(v) = found {
                    offset = v.span().start;
                    if let DeValue::Table(t) = v.get_ref() {
                        table = Some(t);
                    }
                }
            }
        }
    }
    (offset, dotted)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A PKCS#8 PEM DKIM key as lettre reads it, with its algorithm: RSA as PKCS#1 PEM,
/// Ed25519 as its base64 32-byte seed. `None` when `pem` is not PKCS#8 (or not readable).
fn pkcs8_dkim_key(pem: &str) -> Option<(String, DkimAlgorithm)> {
    use base64::Engine as _;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    if !pem.contains("-----BEGIN PRIVATE KEY-----") {
        return None;
    }
    if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(pem.trim()) {
        let pkcs1 = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).ok()?;
        return Some((pkcs1.to_string(), DkimAlgorithm::Rsa));
    }
    // Ed25519 in PKCS#8 v1 (RFC 8410) is always these 16 bytes, then the 32-byte seed.
    const ED25519_PKCS8: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let seed = der.strip_prefix(&ED25519_PKCS8[..])?;
    (seed.len() == 32).then(|| {
        (
            base64::engine::general_purpose::STANDARD.encode(seed),
            DkimAlgorithm::Ed25519,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn next_after(expr: &str, y: i32, m: u32, d: u32) -> String {
        let s = parse_schedule(expr).unwrap();
        let after = Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap();
        s.after(&after)
            .next()
            .unwrap()
            .format("%a %Y-%m-%d %H:%M:%S")
            .to_string()
    }

    #[test]
    fn five_field_cron_numbers_weekdays_from_sunday_zero() {
        // 2026-11-29 is a Sunday.
        assert_eq!(
            next_after("0 8 * * 1", 2026, 11, 29),
            "Mon 2026-11-30 08:00:00"
        );
        assert_eq!(
            next_after("0 8 * * 0", 2026, 11, 28),
            "Sun 2026-11-29 08:00:00"
        );
        assert_eq!(
            next_after("0 8 * * 7", 2026, 11, 28),
            "Sun 2026-11-29 08:00:00"
        );
        assert_eq!(
            next_after("30 6 * * 1-5", 2026, 11, 27),
            "Mon 2026-11-30 06:30:00"
        );
        assert_eq!(
            next_after("0 8 * * mon", 2026, 11, 29),
            "Mon 2026-11-30 08:00:00"
        );
    }

    #[test]
    fn accepts_seconds_fields_and_shorthands() {
        assert_eq!(
            next_after("15 0 9 * * *", 2026, 11, 29),
            "Mon 2026-11-30 09:00:15"
        );
        assert_eq!(
            next_after("@daily", 2026, 11, 29),
            "Mon 2026-11-30 00:00:00"
        );
        assert_eq!(
            next_after("@weekly", 2026, 11, 26),
            "Sun 2026-11-29 00:00:00"
        );
        assert!(parse_schedule("every day").is_err());
        assert!(parse_schedule("61 * * * *").is_err());
    }

    #[test]
    fn addresses_get_lower_case_domains() {
        assert_eq!(
            parse_address(" Bo.Chen@Example.NET ").unwrap().to_string(),
            "Bo.Chen@example.net"
        );
        assert!(parse_address("not an address").is_err());
    }

    #[test]
    fn plain_lines_drop_control_characters() {
        assert_eq!(plain_line("a\r\nBcc: x\u{0}  y"), "a Bcc: x y");
    }
}
