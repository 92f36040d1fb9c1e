//! `[delivery]`, `[delivery.smtp]` and `[delivery.dkim]`: the transport, pacing, retries,
//! the envelope sender and DKIM keys, with their validation.

use super::*;

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
    /// Temporary delivery failures reported back (`gazette inbound`) within
    /// `soft_bounce_window` after which a reader is marked bounced.
    pub soft_bounce_limit: u32,
    /// The window temporary failures are counted in.
    pub soft_bounce_window: std::time::Duration,
}

/// Default `delivery.soft_bounce_window`: 30 days.
const SOFT_BOUNCE_WINDOW: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

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

impl Validator<'_> {
    pub(super) fn delivery(
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
        let soft_bounce_window = take(
            duration(&raw.soft_bounce_window, SOFT_BOUNCE_WINDOW),
            "soft_bounce_window",
            SOFT_BOUNCE_WINDOW,
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
        // Three reported temporary failures in 30 days: a weekly digest's reader whose
        // mailbox stays full for three weeks, a daily one's for three days in a month.
        let soft_bounce_limit = self
            .count(&raw.soft_bounce_limit, "delivery.soft_bounce_limit", 1)
            .map_or(3, |n| u32::try_from(n).unwrap_or(u32::MAX));
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
            soft_bounce_limit,
            soft_bounce_window,
        })
    }

    pub(super) fn smtp(
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

    pub(super) fn dkim(
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
}
