//! Loads `config.toml` in two stages: the serde mirror in [`raw`], then validation into a
//! typed [`Config`] whose cron schedules, time zones, mailboxes and URLs are already parsed.
//!
//! Validation collects *every* problem, each with file:line:column and the key in
//! backticks, so an operator fixes them all in one pass. Nothing else re-reads the file.

mod delivery;
mod digests;
mod http;
mod keys;
mod raw;
mod sources;
mod state;
mod subscribers;
mod web;

pub use delivery::*;
pub use digests::*;
pub use http::HttpSettings;
use keys::*;
pub use sources::*;
pub use subscribers::*;
pub use web::*;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono_tz::Tz;
use lettre::message::Mailbox;
use lettre::Address;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

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

impl Config {
    /// Where the secret that signs links and mailto unsubscribe tags comes from:
    /// `[web]`'s, else `gazette.secret` beside the database (made on first use).
    pub fn token_secret(&self) -> SecretSource {
        self.web.as_ref().map_or_else(
            || SecretSource::File(self.state_path.with_file_name("gazette.secret")),
            |w| w.secret.clone(),
        )
    }

    /// The address List-Unsubscribe's mailto goes to (before its tag): the envelope
    /// sender, where bounces go too, so one mailbox collects everything `gazette
    /// inbound` reads.
    pub fn inbound_address(&self) -> &Address {
        self.delivery
            .return_path
            .as_ref()
            .unwrap_or(&self.site.from.email)
    }
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
